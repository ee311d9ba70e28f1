/*
 * trap.S - the 256 IDT entry stubs and the common save/restore path.
 *
 * Every stub pushes a uniform (error code, vector) pair so trap_dispatch()
 * sees one struct trap_frame layout. FPU/SSE state is saved with fxsave
 * because interrupts may arrive while newlib or gcc-generated code is using
 * xmm registers, and our handlers may use them too.
 */
	.text

.macro STUB n
	.balign 16
trap_stub_\n:
	.if (\n == 8 || \n == 10 || \n == 11 || \n == 12 || \n == 13 || \n == 14 || \n == 17 || \n == 21 || \n == 29 || \n == 30)
	.else
	pushq	$0
	.endif
	pushq	$\n
	jmp	trap_common
.endm

.altmacro
.set i, 0
.rept 256
	STUB %i
	.set i, i + 1
.endr

trap_common:
	cld
	push	%rax
	push	%rbx
	push	%rcx
	push	%rdx
	push	%rsi
	push	%rdi
	push	%rbp
	push	%r8
	push	%r9
	push	%r10
	push	%r11
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	mov	%rsp, %rdi		/* struct trap_frame * */
	mov	%rsp, %rbx		/* callee-saved: the frame, to restore rsp */
	sub	$512, %rsp
	and	$~15, %rsp
	fxsave64 (%rsp)
	call	trap_dispatch
	fxrstor64 (%rsp)
	mov	%rbx, %rsp
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%r11
	pop	%r10
	pop	%r9
	pop	%r8
	pop	%rbp
	pop	%rdi
	pop	%rsi
	pop	%rdx
	pop	%rcx
	pop	%rbx
	pop	%rax
	add	$16, %rsp		/* vector, error code */
	iretq

	.section .rodata
	.balign 8
	.globl trap_stubs
trap_stubs:
.macro ENTRY n
	.quad trap_stub_\n
.endm
.set i, 0
.rept 256
	ENTRY %i
	.set i, i + 1
.endr
