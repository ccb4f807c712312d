/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the code does differently under AddressSanitizer (scripts/test.sh's second build): AK_ASAN
 * is 1 there (gcc's __SANITIZE_ADDRESS__, clang's __has_feature), else 0.
 */
#pragma once

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define AK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AK_ASAN 1
#endif
#endif
#ifndef AK_ASAN
#define AK_ASAN 0
#endif

#if AK_ASAN
#include <sanitizer/asan_interface.h>
#endif

/* A fresh mapping about to be a clone(CLONE_VM) child's stack: its shadow is cleared. mmap may
 * hand back addresses an earlier mapping used (a joined thread's stack, whose redzones the
 * sanitizer poisoned and never cleared), and the child's first write there, the sanitizer's own
 * sigaltstack call, was reported as an overflow of that old stack. */
static inline void sanitizer_fresh_stack(void *stack, size_t size)
{
#if AK_ASAN
        ASAN_UNPOISON_MEMORY_REGION(stack, size);
#else
        (void)stack;
        (void)size;
#endif
}

/* The entry of a clone(CLONE_VM) child on a stack of ours, which ends in execve or _exit: left
 * uninstrumented. The sanitizer's code before a call that never returns clears the shadow of
 * "the stack" from the thread's top down to the stack pointer; here those lie on different
 * mappings, and it prints a warning instead ("ignoring requested __asan_handle_no_return") into
 * the sandbox's stderr. */
#if AK_ASAN
#define SANITIZER_CHILD_ENTRY __attribute__((no_sanitize_address))
#else
#define SANITIZER_CHILD_ENTRY
#endif
