/*
 * Locking a tool's child process down, in the order the kernel needs:
 * rlimits, no-new-privileges, Landlock, then the seccomp filter last (after
 * it, only the listed system calls work). Namespaces are set up one step
 * earlier by the intermediate child in sandbox.c.
 *
 * Landlock: the ruleset handles every file right the running kernel knows
 * (ABI 1..7, asked with LANDLOCK_CREATE_RULESET_VERSION), so anything not
 * granted by the tool's prepare hook is refused: no reads outside the grant,
 * no writes at all. From ABI 4 TCP connect/bind are handled too (only the
 * ports the job allows), from ABI 6 signals and abstract sockets are scoped
 * to the sandbox. Without Landlock (ABI 0) the child goes on without it and
 * the parent logs the downgrade once; file access then rests on the closed
 * descriptors, the seccomp filter and DAC.
 *
 * seccomp (libseccomp): default deny with EPERM, so libraries probing an
 * optional call get an error rather than a dead process; execve/execveat,
 * fork/vfork/clone of a new process, ptrace and (for tools without network)
 * socket kill the process with SIGSYS, which the parent reports as a blocked
 * forbidden action.
 */
#include "tools/confine.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

/* Our own copies of the newer UAPI pieces so the code builds with older headers. */
struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

struct ll_path_beneath_attr {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

struct ll_net_port_attr {
	uint64_t allowed_access;
	uint64_t port;
};

#define LL_RULE_PATH_BENEATH 1
#define LL_RULE_NET_PORT     2
#define LL_FS_WRITE_FILE     (1ULL << 1)
#define LL_FS_READ_FILE      (1ULL << 2)
#define LL_FS_READ_DIR       (1ULL << 3)
#define LL_NET_BIND_TCP      (1ULL << 0)
#define LL_NET_CONNECT_TCP   (1ULL << 1)
#define LL_SCOPE_ABSTRACT    (1ULL << 0)
#define LL_SCOPE_SIGNAL      (1ULL << 1)
#define LL_VERSION_FLAG      (1U << 0)

int confine_landlock_abi(void)
{
#ifdef SYS_landlock_create_ruleset
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_VERSION_FLAG);
	return v > 0 ? (int)v : 0;
#else
	return 0;
#endif
}

/* Every filesystem right the kernel of this ABI knows: handling them all denies them all. */
static uint64_t fs_rights(int abi)
{
	uint64_t r = (1ULL << 13) - 1; /* ABI 1: execute .. make_sym */
	if (abi >= 2)
		r |= 1ULL << 13; /* refer */
	if (abi >= 3)
		r |= 1ULL << 14; /* truncate */
	if (abi >= 5)
		r |= 1ULL << 15; /* ioctl_dev */
	return r;
}

int confine_landlock(int abi, const char *const *read_paths, const bool *writable, int nread,
		     const unsigned *ports, int nports)
{
	if (abi <= 0)
		return 0;
	struct ll_ruleset_attr attr = {.handled_access_fs = fs_rights(abi)};
	size_t size = sizeof attr.handled_access_fs;
	if (abi >= 4) {
		attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
		size = offsetof(struct ll_ruleset_attr, scoped);
	}
	if (abi >= 6) {
		attr.scoped = LL_SCOPE_ABSTRACT | LL_SCOPE_SIGNAL;
		size = sizeof attr;
	}
	int fd = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (fd < 0)
		return ag_error_set(AG_EIO, "landlock_create_ruleset: %s", strerror(errno));
	for (int i = 0; i < nread; i++) {
		int pfd = open(read_paths[i], O_PATH | O_CLOEXEC);
		if (pfd < 0)
			continue; /* a grant that does not exist grants nothing */
		struct stat st;
		struct ll_path_beneath_attr pb = {.allowed_access = LL_FS_READ_FILE, .parent_fd = pfd};
		if (fstat(pfd, &st) == 0 && S_ISDIR(st.st_mode))
			pb.allowed_access |= LL_FS_READ_DIR;
		else if (writable && writable[i])
			pb.allowed_access |= LL_FS_WRITE_FILE;
		long rc = syscall(SYS_landlock_add_rule, fd, LL_RULE_PATH_BENEATH, &pb, 0);
		int e = errno;
		close(pfd);
		if (rc) {
			close(fd);
			return ag_error_set(AG_EIO, "landlock_add_rule %s: %s", read_paths[i], strerror(e));
		}
	}
	if (abi >= 4) {
		for (int i = 0; i < nports; i++) {
			struct ll_net_port_attr np = {.allowed_access = LL_NET_CONNECT_TCP, .port = ports[i]};
			if (syscall(SYS_landlock_add_rule, fd, LL_RULE_NET_PORT, &np, 0)) {
				int e = errno;
				close(fd);
				return ag_error_set(AG_EIO, "landlock_add_rule port %u: %s", ports[i],
						    strerror(e));
			}
		}
	}
	long rc = syscall(SYS_landlock_restrict_self, fd, 0);
	int e = errno;
	close(fd);
	if (rc)
		return ag_error_set(AG_EIO, "landlock_restrict_self: %s", strerror(e));
	return 0;
}

/* Current address-space size, so the memory limit is what the tool may add. */
static rlim_t current_vm_bytes(void)
{
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	char buf[128];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	unsigned long long pages = 0;
	for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
		pages = pages * 10 + (unsigned long long)(buf[i] - '0');
	return (rlim_t)(pages * (unsigned long long)sysconf(_SC_PAGESIZE));
}

int confine_rlimits(const tools_limits *lim, unsigned needs)
{
	rlim_t cpu = (rlim_t)lim->cpu_seconds;
	if ((double)cpu < lim->cpu_seconds)
		cpu++;
	if (cpu < 1)
		cpu = 1;
	/* CPU: SIGXCPU at the soft limit (the child handles it and exits with a
	 * status the parent recognises), SIGKILL one second later at the hard
	 * limit, which even a PID namespace's init (this child) cannot ignore. */
	struct {
		int resource;
		rlim_t value;
	} set[] = {
		{RLIMIT_CPU, cpu},   {RLIMIT_AS, current_vm_bytes() + (rlim_t)lim->memory_bytes},
		{RLIMIT_FSIZE, 0},   {RLIMIT_NOFILE, 64},
		{RLIMIT_CORE, 0},    {RLIMIT_NPROC, (needs & TOOLS_NEED_THREADS) ? 256 : 1},
		{RLIMIT_MEMLOCK, 0}, {RLIMIT_MSGQUEUE, 0},
	};
	for (size_t i = 0; i < sizeof set / sizeof set[0]; i++) {
		struct rlimit r = {set[i].value, set[i].value + (set[i].resource == RLIMIT_CPU ? 1 : 0)};
		struct rlimit old;
		/* Never raise a limit the daemon already runs under. */
		if (getrlimit(set[i].resource, &old) == 0 && old.rlim_max != RLIM_INFINITY &&
		    old.rlim_max < r.rlim_max)
			r.rlim_cur = r.rlim_max = old.rlim_max;
		if (setrlimit(set[i].resource, &r))
			return ag_error_set(AG_EIO, "setrlimit(%d): %s", set[i].resource, strerror(errno));
	}
	return 0;
}

static const int allowed_always[] = {
	SCMP_SYS(read),
	SCMP_SYS(write),
	SCMP_SYS(readv),
	SCMP_SYS(writev),
	SCMP_SYS(pread64),
	SCMP_SYS(close),
	SCMP_SYS(fstat),
	SCMP_SYS(newfstatat),
	SCMP_SYS(stat),
	SCMP_SYS(lstat),
	SCMP_SYS(statx),
	SCMP_SYS(lseek),
	SCMP_SYS(mmap),
	SCMP_SYS(munmap),
	SCMP_SYS(mremap),
	SCMP_SYS(mprotect),
	SCMP_SYS(madvise),
	SCMP_SYS(brk),
	SCMP_SYS(rt_sigaction),
	SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(rt_sigreturn),
	SCMP_SYS(sigaltstack),
	SCMP_SYS(exit),
	SCMP_SYS(exit_group),
	SCMP_SYS(futex),
	SCMP_SYS(getpid),
	SCMP_SYS(gettid),
	SCMP_SYS(getuid),
	SCMP_SYS(geteuid),
	SCMP_SYS(getgid),
	SCMP_SYS(getegid),
	SCMP_SYS(clock_gettime),
	SCMP_SYS(clock_getres),
	SCMP_SYS(clock_nanosleep),
	SCMP_SYS(nanosleep),
	SCMP_SYS(gettimeofday),
	SCMP_SYS(time),
	SCMP_SYS(getrandom),
	SCMP_SYS(sched_yield),
	SCMP_SYS(sched_getaffinity),
	SCMP_SYS(set_robust_list),
	SCMP_SYS(rseq),
	SCMP_SYS(set_tid_address),
	SCMP_SYS(getrlimit),
	SCMP_SYS(getrusage),
	SCMP_SYS(sysinfo),
	SCMP_SYS(uname),
	SCMP_SYS(getcwd),
	/* Opening is filtered by Landlock, which knows the paths; seccomp cannot. */
	SCMP_SYS(openat),
	SCMP_SYS(open),
	SCMP_SYS(fcntl),
	SCMP_SYS(dup),
	SCMP_SYS(dup2),
	SCMP_SYS(dup3),
	SCMP_SYS(poll),
	SCMP_SYS(ppoll),
	SCMP_SYS(access),
	SCMP_SYS(faccessat),
	SCMP_SYS(faccessat2),
	SCMP_SYS(readlink),
	SCMP_SYS(readlinkat),
	SCMP_SYS(getdents64),
	SCMP_SYS(fadvise64),
};

static const int allowed_network[] = {
	SCMP_SYS(connect),     SCMP_SYS(getsockopt), SCMP_SYS(setsockopt), SCMP_SYS(getsockname),
	SCMP_SYS(getpeername), SCMP_SYS(sendto),     SCMP_SYS(recvfrom),   SCMP_SYS(sendmsg),
	SCMP_SYS(recvmsg),     SCMP_SYS(sendmmsg),   SCMP_SYS(recvmmsg),   SCMP_SYS(shutdown),
	SCMP_SYS(select),      SCMP_SYS(pselect6),   SCMP_SYS(pipe2),      SCMP_SYS(pipe),
	SCMP_SYS(eventfd2),    SCMP_SYS(socketpair), SCMP_SYS(bind),
};

static const int killed_always[] = {
	SCMP_SYS(execve), SCMP_SYS(execveat), SCMP_SYS(fork), SCMP_SYS(vfork), SCMP_SYS(ptrace),
};

#define ADD(action, nr, ...)                                                                                 \
	do {                                                                                                 \
		int add_rc_ = seccomp_rule_add(ctx, (action), (nr), __VA_ARGS__);                            \
		if (add_rc_) {                                                                               \
			rc = ag_error_set(AG_ERR, "seccomp rule for syscall %d: %s", (nr),                   \
					  strerror(-add_rc_));                                               \
			goto out;                                                                            \
		}                                                                                            \
	} while (0)

int confine_seccomp(unsigned needs)
{
	int rc = 0;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	if (!ctx)
		return ag_error_set(AG_ERR, "seccomp_init failed");
	for (size_t i = 0; i < sizeof allowed_always / sizeof allowed_always[0]; i++)
		ADD(SCMP_ACT_ALLOW, allowed_always[i], 0);
	for (size_t i = 0; i < sizeof killed_always / sizeof killed_always[0]; i++)
		ADD(SCMP_ACT_KILL_PROCESS, killed_always[i], 0);
	/* Signals only to ourselves (abort(), pthread_kill). */
	ADD(SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid(), 0));
	/* Limits may be read, never changed. */
	ADD(SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 1, SCMP_A2(SCMP_CMP_EQ, 0, 0));
	ADD(SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, FIONREAD, 0));
	ADD(SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, FIONBIO, 0));
	ADD(SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, TCGETS, 0));
	/* A new process is never allowed; a thread only for tools that declare it.
	 * clone3 hides its flags in memory seccomp cannot read: ENOSYS makes glibc fall back to clone. */
	ADD(SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	ADD(SCMP_ACT_KILL_PROCESS, SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
	if (needs & TOOLS_NEED_THREADS)
		ADD(SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
		    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	if (needs & TOOLS_NEED_NETWORK) {
		for (size_t i = 0; i < sizeof allowed_network / sizeof allowed_network[0]; i++)
			ADD(SCMP_ACT_ALLOW, allowed_network[i], 0);
		static const int families[] = {AF_INET, AF_INET6, AF_UNIX, AF_NETLINK};
		for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
			ADD(SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
			    SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)families[i], 0));
	} else {
		ADD(SCMP_ACT_KILL_PROCESS, SCMP_SYS(socket), 0);
		ADD(SCMP_ACT_KILL_PROCESS, SCMP_SYS(socketpair), 0);
	}
	int lrc = seccomp_load(ctx);
	if (lrc)
		rc = ag_error_set(AG_ERR, "seccomp_load: %s", strerror(-lrc));
out:
	seccomp_release(ctx);
	return rc;
}

bool confine_seccomp_supported(void)
{
	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0)
		return false;
	/* libseccomp probes the kernel's API level once per process and caches it;
	 * probing here, in the parent, spares every child the probe. */
	return seccomp_api_get() >= 1;
}
