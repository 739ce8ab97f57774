/*
 * The sandbox: each tool call runs in a forked child, and the parent reads
 * its answer as JSON over a pipe with a size cap and a wall-clock deadline.
 *
 * Process shape: the parent forks A, which starts a new session (its own
 * process group), points stdin at /dev/null, stdout at the result pipe and
 * stderr at a diagnostics pipe, closes every other descriptor (the daemon's
 * sockets and database files), unshares namespaces (user first, then PID,
 * mount, IPC, UTS and, for tools without network, network) and starts B, the
 * first process of the new PID namespace, with clone(CLONE_VM): B shares A's
 * memory rather than copying it (A only waits), which saves a second copy of
 * the daemon's page tables, the largest cost of a call. B applies rlimits,
 * no-new-privileges, Landlock and seccomp (tools/confine.c), runs the tool
 * and writes {"ok": true, "result": ...} or {"ok": false, "code", "error"}.
 * A waits for B and exits with B's status (128 + signal when B was killed),
 * so the parent learns how B ended. Killing A's process group kills both.
 *
 * Why fork directly instead of re-executing a worker binary: the tool's run
 * function must be reachable in the child (tests register their own tools),
 * and a fork costs far less than an exec plus re-initialisation. The price
 * is that the child of a multithreaded daemon inherits locks held by other
 * threads at fork time. glibc makes malloc safe across fork; the call's
 * preparation that needs shared state (settings, documents) happens in the
 * parent before the fork, and everything the child opens (databases,
 * repositories, curl handles) it opens fresh. Should an inherited lock
 * still block the child, the wall-clock limit kills it and the call fails
 * cleanly.
 */
#include "tools/confine.h"
#include "tools/tools_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STDERR_KEEP    2048
#define EXIT_CPU_LIMIT 124        /* A's exit status when B was killed at its CPU limit */
#define B_STACK_BYTES  (8u << 20) /* the sandboxed process's stack */

/* ------------------------------------------------------------- probing */

static tools_sandbox_support support;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

/* Tries each namespace in a throwaway child (unshare changes the caller). */
static void probe(void)
{
	support.landlock_abi = confine_landlock_abi();
	support.seccomp = confine_seccomp_supported();
	int fds[2];
	if (pipe2(fds, O_CLOEXEC))
		return;
	pid_t pid = fork();
	if (pid == 0) {
		unsigned char mask = 0;
		if (unshare(CLONE_NEWUSER) == 0)
			mask |= 1;
		if (unshare(CLONE_NEWNET) == 0)
			mask |= 2;
		if (unshare(CLONE_NEWNS) == 0)
			mask |= 4;
		if (unshare(CLONE_NEWPID) == 0)
			mask |= 8;
		ssize_t w = write(fds[1], &mask, 1);
		_exit(w == 1 ? 0 : 1);
	}
	close(fds[1]);
	unsigned char mask = 0;
	if (pid > 0) {
		if (read(fds[0], &mask, 1) != 1)
			mask = 0;
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	close(fds[0]);
	support.user_ns = mask & 1;
	support.net_ns = mask & 2;
	support.mount_ns = mask & 4;
	support.pid_ns = mask & 8;
	if (!support.landlock_abi)
		ag_warn("tools sandbox: Landlock is not available on this kernel; tool file access is "
			"limited "
			"by closed descriptors, seccomp and ordinary permissions only");
	if (!support.seccomp)
		ag_warn("tools sandbox: seccomp is not available; tools run without a system call filter");
	if (!support.user_ns)
		ag_warn("tools sandbox: user namespaces are not permitted; tools run without them");
	ag_info("tools sandbox: landlock ABI %d, seccomp %s, namespaces user=%d net=%d mount=%d pid=%d",
		support.landlock_abi, support.seccomp ? "yes" : "no", support.user_ns, support.net_ns,
		support.mount_ns, support.pid_ns);
}

const tools_sandbox_support *tools_sandbox_probe(void)
{
	pthread_once(&probe_once, probe);
	return &support;
}

/* ---------------------------------------------------------------- child */

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

__attribute__((noreturn)) static void child_fail(int code, const char *msg)
{
	json_t *v = json_pack("{s:b, s:i, s:s}", "ok", 0, "code", code, "error", msg);
	char *text = NULL;
	size_t len = 0;
	if (v && ag_json_dump(&text, &len, v) == 0)
		write_all(1, text, len);
	else
		write_all(1, "{\"ok\":false,\"code\":-2,\"error\":\"out of memory\"}", 46);
	_exit(1);
}

/* The soft CPU limit: leave at once with the status that names it. */
static void on_cpu_limit(int sig)
{
	(void)sig;
	_exit(EXIT_CPU_LIMIT);
}

/* B: lock down, run, answer. Never returns. */
__attribute__((noreturn)) static void child_run(const tools_tool *t, const json_t *args, const tools_job *job,
						unsigned ns)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* The daemon's threads block signals they wait for; the tool starts clean. */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	struct sigaction xcpu = {.sa_handler = on_cpu_limit};
	sigaction(SIGXCPU, &xcpu, NULL);
	const tools_sandbox_support *sup = &support;
	if (confine_rlimits(&t->limits, t->needs))
		child_fail(AG_ERR, ag_error_last());
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		child_fail(AG_ERR, "prctl(PR_SET_NO_NEW_PRIVS) failed");
	if (confine_landlock(sup->landlock_abi, (const char *const *)job->read_paths, job->writable,
			     job->nread, job->ports, (t->needs & TOOLS_NEED_NETWORK) ? job->nports : 0))
		child_fail(AG_ERR, ag_error_last());
	if (sup->seccomp && confine_seccomp(t->needs))
		child_fail(AG_ERR, ag_error_last());

	json_t *result = NULL;
	ag_error_clear();
	int rc = t->run(&result, args, job->input);
	if (rc) {
		json_decref(result);
		child_fail(rc, *ag_error_last() ? ag_error_last() : "the tool failed");
	}
	json_t *env = json_pack("{s:b, s:o, s:{s:i, s:i, s:b}}", "ok", 1, "result",
				result ? result : json_null(), "sandbox", "namespaces", (int)ns, "landlock",
				sup->landlock_abi, "seccomp", sup->seccomp);
	char *text;
	size_t len;
	if (!env || ag_json_dump(&text, &len, env))
		child_fail(AG_ENOMEM, "out of memory writing the result");
	write_all(1, text, len);
	_exit(0);
}

struct clone_args_ctx {
	const tools_tool *t;
	const json_t *args;
	const tools_job *job;
	unsigned ns;
};

static int child_entry(void *arg)
{
	struct clone_args_ctx *c = arg;
	child_run(c->t, c->args, c->job, c->ns);
}

/* A: isolate, start B, report how B ended. Never returns. */
__attribute__((noreturn)) static void child_intermediate(const tools_tool *t, const json_t *args,
							 const tools_job *job, int out_w, int err_w)
{
	setsid();
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	int null_fd = open("/dev/null", O_RDONLY);
	if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
		_exit(120);
	/* Nothing of the daemon's stays open: sockets, database files, other calls' pipes. */
	if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0) {
		long max = sysconf(_SC_OPEN_MAX);
		for (long fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
			close((int)fd);
	}
	const tools_sandbox_support *sup = &support;
	unsigned ns = 0;
	if (sup->user_ns && unshare(CLONE_NEWUSER) == 0)
		ns |= CLONE_NEWUSER;
	unsigned want[] = {CLONE_NEWPID, CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWNET};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		if (want[i] == CLONE_NEWNET && (t->needs & TOOLS_NEED_NETWORK))
			continue;
		if (want[i] == CLONE_NEWNET && !sup->net_ns)
			continue;
		if (want[i] == CLONE_NEWPID && !sup->pid_ns)
			continue;
		if (unshare((int)want[i]) == 0)
			ns |= want[i];
	}
	/* B shares A's memory (CLONE_VM) instead of copying it: A does nothing but
	 * wait, so nothing of A's can be disturbed, and the second copy of the
	 * daemon's page tables, the costliest part of a call, is saved. B is still
	 * its own process: its own rlimits, credentials, Landlock domain, seccomp
	 * filter and PID namespace. */
	struct clone_args_ctx ctx = {t, args, job, ns};
	size_t stack_size = B_STACK_BYTES;
	void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
			   -1, 0);
	pid_t b = stack == MAP_FAILED
			  ? -1
			  : clone(child_entry, (char *)stack + stack_size, CLONE_VM | SIGCHLD, &ctx);
	if (b < 0)
		child_fail(AG_ERR, "starting the sandboxed process failed");
	int st;
	struct rusage ru;
	while (wait4(b, &st, 0, &ru) < 0)
		if (errno != EINTR)
			_exit(121);
	/* SIGKILL at the CPU limit (soft == hard) looks like any other SIGKILL to
	 * the parent, so A, which sees B's CPU time, names it. */
	double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
		     ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL && cpu >= 0.8 * (double)(long)t->limits.cpu_seconds)
		_exit(EXIT_CPU_LIMIT);
	if (WIFSIGNALED(st))
		_exit(128 + WTERMSIG(st));
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 122);
}

/* --------------------------------------------------------------- parent */

static double now_s(void) { return (double)ag_monotonic_ns() / 1e9; }

/* Maps the child's envelope to a result or an error. */
static int read_envelope(json_t **out, tools_call_info *info, const char *data, size_t len)
{
	json_t *env;
	if (ag_json_parse(&env, data, len))
		return ag_error_set(AG_ECORRUPT, "produced output that is not a JSON result");
	json_t *ok = json_object_get(env, "ok");
	int rc;
	if (json_is_true(ok) && json_object_get(env, "result")) {
		json_t *sb = json_object_get(env, "sandbox");
		info->namespaces = (unsigned)json_integer_value(json_object_get(sb, "namespaces"));
		info->landlock_abi = (int)json_integer_value(json_object_get(sb, "landlock"));
		info->seccomp = json_is_true(json_object_get(sb, "seccomp"));
		*out = json_incref(json_object_get(env, "result"));
		rc = 0;
	} else if (json_is_false(ok) && json_is_string(json_object_get(env, "error"))) {
		json_int_t code = json_integer_value(json_object_get(env, "code"));
		const char *msg = json_string_value(json_object_get(env, "error"));
		if (code == AG_ENOMEM)
			rc = ag_error_set(AG_ELIMIT, "ran out of memory within its limit: %s", msg);
		else
			rc = ag_error_set(code < 0 && code >= AG_EUNSUPPORTED ? (int)code : AG_ERR, "%s",
					  msg);
	} else {
		rc = ag_error_set(AG_ECORRUPT, "produced output that is not a tool result");
	}
	json_decref(env);
	return rc;
}

/* The last line of what the child wrote on stderr, for error messages. */
static const char *stderr_hint(char *buf, size_t len)
{
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	buf[len] = '\0';
	char *nl = strrchr(buf, '\n');
	return nl ? nl + 1 : buf;
}

int tools_sandbox_run(json_t **out, tools_call_info *info, const tools_tool *t, const json_t *args,
		      const tools_job *job)
{
	tools_sandbox_probe();
	int out_p[2], err_p[2];
	if (pipe2(out_p, O_CLOEXEC))
		return ag_error_set(AG_EIO, "pipe: %s", strerror(errno));
	if (pipe2(err_p, O_CLOEXEC)) {
		close(out_p[0]);
		close(out_p[1]);
		return ag_error_set(AG_EIO, "pipe: %s", strerror(errno));
	}
	/* Everything the parent needs after the fork is allocated before it. */
	size_t cap = t->limits.output_bytes;
	ag_buf result = AG_BUF_INIT;
	if (ag_buf_reserve(&result, cap < 65536 ? cap + 1 : 65536)) {
		close(out_p[0]), close(out_p[1]), close(err_p[0]), close(err_p[1]);
		return ag_error_set(AG_ENOMEM, "out of memory for the tool's output");
	}
	char errbuf[STDERR_KEEP + 1];
	size_t errlen = 0;
	double start = now_s();

	pid_t a = fork();
	if (a == 0)
		child_intermediate(t, args, job, out_p[1], err_p[1]);
	int fork_errno = errno;
	close(out_p[1]);
	close(err_p[1]);
	if (a < 0) {
		close(out_p[0]);
		close(err_p[0]);
		ag_buf_free(&result);
		return ag_error_set(AG_EBUSY, "cannot start the sandbox: fork: %s", strerror(fork_errno));
	}
	int pidfd = (int)syscall(SYS_pidfd_open, a, 0);
	double deadline = start + t->limits.wall_seconds;
	bool timed_out = false, too_big = false, exited = false;
	int out_fd = out_p[0], err_fd = err_p[0];
	char chunk[65536];
	while (out_fd >= 0 || err_fd >= 0 || !exited) {
		double left = deadline - now_s();
		if (left <= 0) {
			timed_out = true;
			break;
		}
		struct pollfd pf[3];
		int n = 0, i_out = -1, i_err = -1, i_pid = -1;
		if (out_fd >= 0)
			pf[i_out = n++] = (struct pollfd){.fd = out_fd, .events = POLLIN};
		if (err_fd >= 0)
			pf[i_err = n++] = (struct pollfd){.fd = err_fd, .events = POLLIN};
		if (!exited && pidfd >= 0)
			pf[i_pid = n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
		int ms = (int)(left * 1000) + 1;
		if (pidfd < 0 && !exited && ms > 5)
			ms = 5; /* no pidfd: look at the child every few milliseconds */
		int pr = poll(pf, (nfds_t)n, ms);
		if (pr < 0 && errno != EINTR)
			break;
		if (i_out >= 0 && pf[i_out].revents) {
			ssize_t r = read(out_fd, chunk, sizeof chunk);
			if (r > 0) {
				if (result.len + (size_t)r > cap) {
					too_big = true;
					break;
				}
				if (ag_buf_append(&result, chunk, (size_t)r)) {
					too_big = true;
					break;
				}
			} else if (r == 0 || errno != EINTR) {
				close(out_fd);
				out_fd = -1;
			}
		}
		if (i_err >= 0 && pf[i_err].revents) {
			ssize_t r = read(err_fd, chunk, sizeof chunk);
			if (r > 0) {
				size_t keep =
					STDERR_KEEP - errlen < (size_t)r ? STDERR_KEEP - errlen : (size_t)r;
				memcpy(errbuf + errlen, chunk, keep);
				errlen += keep;
			} else if (r == 0 || errno != EINTR) {
				close(err_fd);
				err_fd = -1;
			}
		}
		if (!exited) {
			if (pidfd >= 0) {
				if (i_pid >= 0 && pf[i_pid].revents)
					exited = true;
			} else {
				siginfo_t si = {0};
				if (waitid(P_PID, (id_t)a, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
				    si.si_pid == a)
					exited = true;
			}
		}
	}
	/* Whatever is left of the group goes: on timeout, overflow, or stragglers. */
	kill(-a, SIGKILL);
	kill(a, SIGKILL);
	int st = 0;
	struct rusage ru;
	memset(&ru, 0, sizeof ru);
	while (wait4(a, &st, 0, &ru) < 0 && errno == EINTR)
		;
	if (out_fd >= 0)
		close(out_fd);
	if (err_fd >= 0)
		close(err_fd);
	if (pidfd >= 0)
		close(pidfd);
	info->wall_ms = (now_s() - start) * 1000.0;
	info->output_bytes = result.len;
	int code = -1, sig = 0;
	if (WIFEXITED(st)) {
		code = WEXITSTATUS(st);
		if (code > 128) {
			sig = code - 128;
			code = -1;
		}
	} else if (WIFSIGNALED(st)) {
		sig = WTERMSIG(st);
	}
	info->exit_status = code;
	info->signal = sig;
	double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
		     ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
	const char *hint = stderr_hint(errbuf, errlen);
	/* Sanitizer builds die with a report instead of returning NULL from malloc. */
	bool oom_report = strstr(errbuf, "out of memory") || strstr(errbuf, "allocation-size-too-big");

	int rc;
	if (too_big)
		rc = ag_error_set(AG_ELIMIT, "wrote more than %zu bytes of output and was stopped", cap);
	else if (timed_out)
		rc = ag_error_set(AG_ETIMEOUT, "ran longer than its %.3g s wall-clock limit and was stopped",
				  t->limits.wall_seconds);
	else if (sig == SIGSYS)
		rc = ag_error_set(AG_EDENIED,
				  "was stopped by the sandbox: it attempted a forbidden system call "
				  "(process creation, exec, tracing or, without network, a socket)");
	else if (sig == SIGXCPU || code == EXIT_CPU_LIMIT ||
		 (sig == SIGKILL && cpu >= t->limits.cpu_seconds * 0.9))
		rc = ag_error_set(AG_ETIMEOUT, "used more than its %.3g s of CPU time and was stopped",
				  t->limits.cpu_seconds);
	else if (sig == SIGXFSZ)
		rc = ag_error_set(AG_EDENIED, "was stopped by the sandbox: it tried to write a file");
	else if (sig)
		rc = ag_error_set(AG_ERR, "crashed with signal %d (%s) after %.2f s of CPU%s%s", sig,
				  strsignal(sig), cpu, *hint ? ": " : "", hint);
	else if (result.len)
		rc = read_envelope(out, info, result.data, result.len);
	else if (oom_report)
		rc = ag_error_set(AG_ELIMIT, "ran out of memory within its %zu-byte limit",
				  t->limits.memory_bytes);
	else
		rc = ag_error_set(AG_ERR, "exited with status %d without a result%s%s", code,
				  *hint ? ": " : "", hint);
	ag_buf_free(&result);
	return rc;
}
