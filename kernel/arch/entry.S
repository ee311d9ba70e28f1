/*
 * entry.S - first kernel instructions. The loader jumps here with
 * rdi = direct-map address of struct boot_info, interrupts off, on its own
 * page tables. Move to our own stack (the UEFI stack is reclaimable memory),
 * enable SSE (newlib's printf and gcc use it), and call kmain.
 */
	.section .text.entry, "ax"
	.globl _start
_start:
	cli
	lea	boot_stack_top(%rip), %rsp
	xor	%rbp, %rbp		/* end of the frame-pointer chain for backtraces */

	/* SSE: CR0.EM=0, CR0.MP=1; CR4.OSFXSR|OSXMMEXCPT. */
	mov	%cr0, %rax
	and	$~(1 << 2), %rax
	or	$(1 << 1), %rax
	mov	%rax, %cr0
	mov	%cr4, %rax
	or	$(3 << 9), %rax
	mov	%rax, %cr4
	fninit

	call	kmain			/* rsp is 16-byte aligned here, as the ABI wants */
1:	cli
	hlt
	jmp	1b

	.section .bss
	.balign 16
	.globl boot_stack_bottom
boot_stack_bottom:
	.skip 65536
	.globl boot_stack_top
boot_stack_top:
