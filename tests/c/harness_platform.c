/*
 * Measuring hooks for the harness (see harness_platform.h).
 *
 * On bare-metal RISC-V under qemu (`__riscv` and `HARNESS_QEMU`):
 * - heap: the link wraps malloc, calloc, realloc, free, aligned_alloc,
 *   memalign and posix_memalign (`-Wl,--wrap=...`), so every allocation
 *   the Rust archive makes through its C-heap global allocator passes
 *   here; a small table maps live pointers to sizes. A table instead of a
 *   size header in front of each block, so the blocks keep exactly the
 *   alignment the caller asked for.
 * - stack: the region picolibc's link script reserves below `__stack`
 *   (`__stack_size` bytes, starting at `__heap_end`) is painted with a
 *   pattern, and the lowest overwritten word shows the deepest point the
 *   code under test reached.
 * - instructions: `minstret`, which qemu counts exactly with
 *   `-icount shift=0` (without it the CSR follows the host clock).
 *
 * Anywhere else these are stubs.
 */
#include "harness_platform.h"

#if defined(__riscv) && defined(HARNESS_QEMU)

#include <stdlib.h>

/* ------------------------------------------------------------------ heap */

#define MAX_LIVE 1024

static struct {
    void *ptr;
    size_t size;
} live[MAX_LIVE];
static size_t live_bytes;
static size_t peak_bytes;
static int lost_track;

static void track(void *ptr, size_t size) {
    if (ptr == NULL) {
        return;
    }
    for (size_t i = 0; i < MAX_LIVE; i++) {
        if (live[i].ptr == NULL) {
            live[i].ptr = ptr;
            live[i].size = size;
            live_bytes += size;
            if (live_bytes > peak_bytes) {
                peak_bytes = live_bytes;
            }
            return;
        }
    }
    lost_track = 1;
}

static void untrack(void *ptr) {
    if (ptr == NULL) {
        return;
    }
    for (size_t i = 0; i < MAX_LIVE; i++) {
        if (live[i].ptr == ptr) {
            live_bytes -= live[i].size;
            live[i].ptr = NULL;
            return;
        }
    }
    lost_track = 1;
}

void *__real_malloc(size_t size);
void *__real_calloc(size_t count, size_t size);
void *__real_realloc(void *ptr, size_t size);
void __real_free(void *ptr);
void *__real_aligned_alloc(size_t align, size_t size);
void *__real_memalign(size_t align, size_t size);
int __real_posix_memalign(void **out, size_t align, size_t size);

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t count, size_t size);
void *__wrap_realloc(void *ptr, size_t size);
void __wrap_free(void *ptr);
void *__wrap_aligned_alloc(size_t align, size_t size);
void *__wrap_memalign(size_t align, size_t size);
int __wrap_posix_memalign(void **out, size_t align, size_t size);

void *__wrap_malloc(size_t size) {
    void *ptr = __real_malloc(size);
    track(ptr, size);
    return ptr;
}

void *__wrap_calloc(size_t count, size_t size) {
    void *ptr = __real_calloc(count, size);
    track(ptr, count * size);
    return ptr;
}

void *__wrap_realloc(void *ptr, size_t size) {
    void *moved = __real_realloc(ptr, size);
    if (moved != NULL || size == 0) {
        untrack(ptr);
        track(moved, size);
    }
    return moved;
}

void __wrap_free(void *ptr) {
    untrack(ptr);
    __real_free(ptr);
}

void *__wrap_aligned_alloc(size_t align, size_t size) {
    void *ptr = __real_aligned_alloc(align, size);
    track(ptr, size);
    return ptr;
}

void *__wrap_memalign(size_t align, size_t size) {
    void *ptr = __real_memalign(align, size);
    track(ptr, size);
    return ptr;
}

int __wrap_posix_memalign(void **out, size_t align, size_t size) {
    int status = __real_posix_memalign(out, align, size);
    if (status == 0) {
        track(*out, size);
    }
    return status;
}

int platform_can_measure(void) { return 1; }
size_t platform_heap_live(void) { return live_bytes; }
size_t platform_heap_peak(void) { return peak_bytes; }
void platform_heap_reset_peak(void) { peak_bytes = live_bytes; }
int platform_heap_lost_track(void) { return lost_track; }

/* ----------------------------------------------------------------- stack */

#define PAINT 0xA5C3A5C3u
/* Left unpainted below the painting frame: the paint loop's own frame and
 * the calls between painting and the code under test. */
#define PAINT_MARGIN 256u

/* picolibc.ld: the stack is [__heap_end, __stack). */
extern char __heap_end[];
static uintptr_t painted_top;

__attribute__((noinline)) void platform_stack_paint(void) {
    volatile uint32_t *bottom = (volatile uint32_t *)(void *)__heap_end;
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    volatile uint32_t *end = (volatile uint32_t *)((here - PAINT_MARGIN) & ~(uintptr_t)3);
    painted_top = here;
    for (volatile uint32_t *word = bottom; word < end; word++) {
        *word = PAINT;
    }
}

size_t platform_stack_used(void) {
    const uint32_t *word = (const uint32_t *)(void *)__heap_end;
    while ((uintptr_t)word < painted_top && *word == PAINT) {
        word++;
    }
    return (size_t)(painted_top - (uintptr_t)word);
}

/* ---------------------------------------------------------- instructions */

uint32_t platform_instret(void) {
    uint32_t count;
    /* csrr count, minstret (CSR 0xB02), spelled as a raw instruction: the
     * rv32imc multilib needs -march without _zicsr, and GCC 12's assembler
     * then refuses the csrr mnemonic. 0xB02 as a signed 12-bit immediate
     * is -1278. */
    __asm__ volatile(".insn i 0x73, 2, %0, x0, -1278" : "=r"(count));
    return count;
}

#else

int platform_can_measure(void) { return 0; }
size_t platform_heap_live(void) { return 0; }
size_t platform_heap_peak(void) { return 0; }
void platform_heap_reset_peak(void) {}
int platform_heap_lost_track(void) { return 0; }
void platform_stack_paint(void) {}
size_t platform_stack_used(void) { return 0; }
uint32_t platform_instret(void) { return 0; }

#endif
