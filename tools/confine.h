/*
 * The child-side lockdown steps of the sandbox (tools/confine.c), internal
 * to the tools module: rlimits, Landlock and the seccomp filter.
 */
#ifndef TOOLS_CONFINE_H
#define TOOLS_CONFINE_H

#include "tools/tools.h"

/* The kernel's Landlock ABI version, 0 when Landlock is unavailable. */
int confine_landlock_abi(void);
/* Restricts this process to reading read_paths (writing those marked
 * writable, files only) and connecting to ports. */
int confine_landlock(int abi, const char *const *read_paths, const bool *writable, int nread,
		     const unsigned *ports, int nports);
/* CPU, address space (on top of the current size), file size, files, processes, core. */
int confine_rlimits(const tools_limits *lim, unsigned needs);
/* Loads the filter for a tool with these needs. */
int confine_seccomp(unsigned needs);
bool confine_seccomp_supported(void);

#endif
