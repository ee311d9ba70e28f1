# kernel/module.mk - see the top of Makefile for what these variables mean.
