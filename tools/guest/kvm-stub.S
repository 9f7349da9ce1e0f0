# Tiny 32-bit multiboot kernel for KVM smoke tests: prints KVM-STUB-READY on COM1, powers off on the ACPI power button.
# Build: as --32 -o kvm-stub.o kvm-stub.S && ld -m elf_i386 -Ttext 0x100000 -o kvm-stub.elf kvm-stub.o

        .set MB_MAGIC, 0x1BADB002
        .set MB_FLAGS, 0
        .set COM1, 0x3f8
        .set PWRBTN_STS, 0x0100
        .set SLP_EN, 0x2000
        .set SCI_EN, 0x0001

        .section .text
        .globl _start
        .align 4
multiboot_header:
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)

_start:
        cli
        mov $stack_top, %esp
        # Multiboot leaves GDTR undefined; interrupts need a valid GDT, so load ours.
        lgdt gdt_descriptor
        ljmp $0x08, $reload_segments
reload_segments:
        mov $0x10, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %fs
        mov %ax, %gs
        mov %ax, %ss

        mov $msg_ready, %esi
        call print

        call find_fadt
        call acpi_setup
        call idt_setup

        # Only the PIT (IRQ0, ~18 Hz from the BIOS) wakes us from hlt; each wake polls the power button.
        mov $0xfe, %al
        outb %al, $0x21
        mov $0xff, %al
        outb %al, $0xa1
poll:
        sti
        hlt
        jmp poll

# irq_handler: every vector lands here; it never returns with iret (PVM KVM cannot emulate iret), it restarts the poll.
irq_handler:
        mov $0x20, %al
        outb %al, $0xa0
        outb %al, $0x20
        mov $stack_top, %esp
        movl pm1a_evt, %edx
        inw %dx, %ax
        test $PWRBTN_STS, %ax
        jz poll
        mov $PWRBTN_STS, %ax
        outw %ax, %dx
        mov $msg_poweroff, %esi
        call print
        # SLP_TYP 0 is S5 (soft off) on QEMU's PIIX4 PM.
        movl pm1a_cnt, %edx
        inw %dx, %ax
        and $0xc3ff, %ax
        or $SLP_EN, %ax
        outw %ax, %dx
        jmp poll

# print: writes the NUL-terminated string at %esi to COM1.
print:
        mov $COM1 + 5, %dx
1:      inb %dx, %al
        test $0x20, %al
        jz 1b
        lodsb
        test %al, %al
        jz 2f
        mov $COM1, %dx
        outb %al, %dx
        jmp print
2:      ret

# find_fadt: locates the RSDP in the BIOS area, then FACP in the RSDT; keeps the 0x600 defaults if absent.
find_fadt:
        mov $0xe0000, %esi
1:      cmpl $0x20445352, (%esi)        # "RSD "
        jne 2f
        cmpl $0x20525450, 4(%esi)       # "PTR "
        je 3f
2:      add $16, %esi
        cmp $0x100000, %esi
        jb 1b
        ret
3:      mov 16(%esi), %ebx              # RSDT address
        mov 4(%ebx), %ecx               # RSDT length
        sub $36, %ecx
        shr $2, %ecx
        lea 36(%ebx), %edi
4:      test %ecx, %ecx
        jz 6f
        mov (%edi), %eax
        cmpl $0x50434146, (%eax)        # "FACP"
        je 5f
        add $4, %edi
        dec %ecx
        jmp 4b
5:      mov %eax, fadt
        mov 56(%eax), %edx              # PM1a_EVT_BLK
        mov %edx, pm1a_evt
        mov 64(%eax), %edx              # PM1a_CNT_BLK
        mov %edx, pm1a_cnt
        movzbl 88(%eax), %edx           # PM1_EVT_LEN
        shr $1, %edx
        add pm1a_evt, %edx
        mov %edx, pm1a_en
6:      ret

# acpi_setup: switches to ACPI mode through SMI_CMD if needed, enables the power button event.
acpi_setup:
        mov fadt, %ebx
        test %ebx, %ebx
        jz 2f
        movl pm1a_cnt, %edx
        inw %dx, %ax
        test $SCI_EN, %ax
        jnz 2f
        mov 48(%ebx), %edx              # SMI_CMD
        movzbl 52(%ebx), %eax           # ACPI_ENABLE
        test %edx, %edx
        jz 2f
        test %al, %al
        jz 2f
        outb %al, %dx
        mov $1000000, %ecx
1:      movl pm1a_cnt, %edx
        inw %dx, %ax
        test $SCI_EN, %ax
        jnz 2f
        loop 1b
2:      movl pm1a_evt, %edx
        mov $0xffff, %ax
        outw %ax, %dx                   # clear stale status bits
        movl pm1a_en, %edx
        mov $PWRBTN_STS, %ax            # PWRBTN_EN has the same bit position
        outw %ax, %dx
        ret

# idt_setup: every vector points at one handler that acknowledges the PIC and returns.
idt_setup:
        mov $idt, %edi
        mov $256, %ecx
        mov $irq_handler, %eax
1:      mov %ax, (%edi)
        movw $0x08, 2(%edi)
        movw $0x8e00, 4(%edi)
        mov %eax, %edx
        shr $16, %edx
        mov %dx, 6(%edi)
        add $8, %edi
        loop 1b
        lidt idt_descriptor
        ret

        .section .data
        .align 8
gdt:
        .quad 0
        .quad 0x00cf9a000000ffff        # flat 32-bit code
        .quad 0x00cf92000000ffff        # flat 32-bit data
gdt_descriptor:
        .word gdt_descriptor - gdt - 1
        .long gdt
idt_descriptor:
        .word 256 * 8 - 1
        .long idt
fadt:     .long 0
pm1a_evt: .long 0x600
pm1a_en:  .long 0x602
pm1a_cnt: .long 0x604
msg_ready:    .asciz "KVM-STUB-READY\r\n"
msg_poweroff: .asciz "KVM-STUB-POWEROFF\r\n"

        .section .bss
        .align 16
idt:    .skip 256 * 8
stack:  .skip 4096
stack_top:
