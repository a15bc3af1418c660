/*
 * What the harness measures about the machine it runs on: heap, stack and
 * retired instructions around one classification.
 *
 * Why a separate file: these need target-specific tricks (linker-wrapped
 * malloc, a painted stack region from the picolibc link script, the
 * RISC-V `minstret` counter), and harness.c should stay the portable,
 * temporal_task.c-shaped C a firmware engineer reads. On targets without
 * a measuring implementation (the host: valgrind checks memory there)
 * every function is a stub and `platform_can_measure()` is 0.
 */
#ifndef HARNESS_PLATFORM_H
#define HARNESS_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

/* 1 when the functions below measure something, 0 for stubs. */
int platform_can_measure(void);

/* Bytes currently allocated through malloc and friends, and the highest
 * value since the last platform_heap_reset_peak(). */
size_t platform_heap_live(void);
size_t platform_heap_peak(void);
void platform_heap_reset_peak(void);
/* Non-zero when the allocation table overflowed (the counts are then
 * lower bounds). */
int platform_heap_lost_track(void);

/* Fills the unused part of the stack with a pattern; after the code under
 * test ran, platform_stack_used() is how far below the painting caller's
 * stack pointer it wrote. Both must be called from the same function. */
void platform_stack_paint(void);
size_t platform_stack_used(void);

/* Retired instructions (exact under `qemu -icount shift=0`). */
uint32_t platform_instret(void);

#endif
