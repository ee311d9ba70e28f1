# app/module.mk - the appliance workload. See the top of Makefile for the variables.
