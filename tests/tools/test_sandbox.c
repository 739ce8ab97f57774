/*
 * Sandbox tests: a test-only tool that misbehaves on purpose (reads
 * /etc/shadow and files outside its grant, writes, opens a socket, forks
 * without end, allocates 10 GB, loops, prints 1 GB, calls execve, hangs,
 * signals its parent). Each call must come back as a clear error, quickly,
 * and this process (standing in for the daemon) must go on serving calls.
 * Where the kernel lacks a layer the test says so and checks what remains.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tools/confine.h" /* the module's own test may use its internal header */
#include "tools/tools.h"

static char tmpdir[1024];

static int hostile_prepare(tools_job *job, const json_t *args, const tools_env *env)
{
	(void)env;
	char path[2048];
	snprintf(path, sizeof path, "%s/granted", json_string_value(json_object_get(args, "dir")));
	return tools_job_grant_read(job, path);
}

static int fail_errno(const char *what) { return ag_error_set(AG_EDENIED, "%s: %s", what, strerror(errno)); }

static int read_file_result(json_t **out, const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return fail_errno(path);
	char buf[64];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n < 0)
		return fail_errno(path);
	buf[n] = '\0';
	*out = json_pack("{s:s}", "read", buf);
	return 0;
}

static int hostile_run(json_t **out, const json_t *args, const json_t *input)
{
	(void)input;
	const char *mode = json_string_value(json_object_get(args, "mode"));
	const char *dir = json_string_value(json_object_get(args, "dir"));
	char path[2048];
	if (strcmp(mode, "shadow") == 0)
		return read_file_result(out, "/etc/shadow");
	if (strcmp(mode, "outside") == 0) {
		snprintf(path, sizeof path, "%s/secret.txt", dir);
		return read_file_result(out, path);
	}
	if (strcmp(mode, "granted") == 0) {
		snprintf(path, sizeof path, "%s/granted/ok.txt", dir);
		return read_file_result(out, path);
	}
	if (strcmp(mode, "write") == 0) {
		const char *targets[] = {"granted/new.txt", "new.txt", NULL};
		for (int i = 0; targets[i]; i++) {
			snprintf(path, sizeof path, "%s/%s", dir, targets[i]);
			int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd >= 0) {
				ssize_t w = write(fd, "pwned", 5);
				close(fd);
				*out = json_pack("{s:s, s:i}", "wrote", path, "bytes", (int)w);
				return 0;
			}
		}
		/* Appending to an existing file is writing too. */
		snprintf(path, sizeof path, "%s/granted/ok.txt", dir);
		int fd = open(path, O_WRONLY | O_APPEND);
		if (fd >= 0) {
			close(fd);
			*out = json_pack("{s:s}", "wrote", path);
			return 0;
		}
		return fail_errno("write");
	}
	if (strcmp(mode, "socket") == 0) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s >= 0) {
			close(s);
			*out = json_pack("{s:b}", "socket", 1);
			return 0;
		}
		return fail_errno("socket");
	}
	if (strcmp(mode, "forkbomb") == 0) {
		for (int i = 0; i < 100000; i++)
			fork();
		*out = json_pack("{s:b}", "forked", 1);
		return 0;
	}
	if (strcmp(mode, "alloc") == 0) {
		size_t n = 10ull << 30;
		/* volatile: the compiler may not elide an allocation whose stores are observable. */
		volatile char *p = malloc(n);
		if (!p)
			return ag_error_set(AG_ENOMEM, "malloc of 10 GB failed");
		for (size_t i = 0; i < n; i += 4096)
			p[i] = 1;
		*out = json_pack("{s:b}", "allocated", 1);
		free((void *)p);
		return 0;
	}
	if (strcmp(mode, "loop") == 0) {
		volatile unsigned long x = 0;
		for (;;)
			x++;
	}
	if (strcmp(mode, "hang") == 0) {
		for (;;) {
			struct timespec ts = {1, 0};
			nanosleep(&ts, NULL);
		}
	}
	if (strcmp(mode, "print") == 0) {
		static char chunk[1 << 16];
		memset(chunk, 'A', sizeof chunk);
		for (size_t done = 0; done < (1ull << 30); done += sizeof chunk)
			if (write(1, chunk, sizeof chunk) < 0)
				return fail_errno("write to stdout");
		*out = json_pack("{s:b}", "printed", 1);
		return 0;
	}
	if (strcmp(mode, "execve") == 0) {
		char *const argv[] = {"/bin/sh", "-c", "echo pwned", NULL};
		execve("/bin/sh", argv, NULL);
		return fail_errno("execve");
	}
	if (strcmp(mode, "kill") == 0) {
		pid_t target = (pid_t)json_integer_value(json_object_get(args, "pid"));
		if (kill(target, SIGKILL) == 0) {
			*out = json_pack("{s:b}", "killed", 1);
			return 0;
		}
		return fail_errno("kill");
	}
	if (strcmp(mode, "garbage") == 0) {
		ssize_t w = write(1, "this is not json", 16);
		(void)w;
		_exit(0);
	}
	return ag_error_set(AG_EINVAL, "unknown mode");
}

static const tools_tool hostile = {
	.name = "hostile",
	.description = "misbehaves on purpose",
	.schema = "{\"type\": \"object\", \"properties\": {\"mode\": {\"type\": \"string\"}, \"dir\": "
		  "{\"type\": \"string\"}, \"pid\": {\"type\": \"integer\"}}, \"required\": [\"mode\", "
		  "\"dir\"], "
		  "\"additionalProperties\": false}",
	.limits = {.cpu_seconds = 1, .wall_seconds = 3, .memory_bytes = 256u << 20, .output_bytes = 1u << 20},
	.needs = TOOLS_NEED_FILES,
	.prepare = hostile_prepare,
	.run = hostile_run,
};

static int call_mode(const char *mode, json_t **out, tools_call_info *info)
{
	json_t *args = json_pack("{s:s, s:s, s:i}", "mode", mode, "dir", tmpdir, "pid", (int)getpid());
	tools_env env = {.tenant = "t", .user = "u", .role = "admin"};
	*out = NULL;
	int rc = tools_call(out, info, &env, "hostile", args);
	json_decref(args);
	printf("  %-9s -> rc %d (%s) in %.0f ms: %s\n", mode, rc, ag_error_name(rc), info->wall_ms,
	       rc ? ag_error_last() : "ok");
	return rc;
}

/* The daemon goes on: a normal call right after works. */
static void assert_still_serving(void)
{
	json_t *args = json_pack("{s:s}", "expression", "6*7"), *out = NULL;
	tools_env env = {.tenant = "t"};
	assert_int_equal(tools_call(&out, NULL, &env, "calculator", args), 0);
	assert_string_equal(json_string_value(json_object_get(out, "value")), "42");
	json_decref(args);
	json_decref(out);
}

static void test_layers_reported(void **state)
{
	(void)state;
	const tools_sandbox_support *s = tools_sandbox_probe();
	printf("  kernel: landlock ABI %d, seccomp %d, user ns %d, net ns %d, mount ns %d, pid ns %d\n",
	       s->landlock_abi, s->seccomp, s->user_ns, s->net_ns, s->mount_ns, s->pid_ns);
	json_t *out;
	tools_call_info info;
	assert_int_equal(call_mode("granted", &out, &info), 0);
	assert_string_equal(json_string_value(json_object_get(out, "read")), "granted content");
	json_decref(out);
	/* What the probe says is available is what the call ran under. */
	assert_int_equal(info.landlock_abi, s->landlock_abi);
	assert_int_equal(info.seccomp, s->seccomp);
	if (s->user_ns)
		assert_true(info.namespaces & 0x10000000 /* CLONE_NEWUSER */);
	if (s->net_ns)
		assert_true(info.namespaces & 0x40000000 /* CLONE_NEWNET */);
	if (s->pid_ns)
		assert_true(info.namespaces & 0x20000000 /* CLONE_NEWPID */);
}

static void test_reads_outside_grant(void **state)
{
	(void)state;
	if (!tools_sandbox_probe()->landlock_abi) {
		printf("  SKIP: no Landlock on this kernel; file reads are not confined\n");
		skip();
	}
	json_t *out;
	tools_call_info info;
	assert_int_equal(call_mode("shadow", &out, &info), AG_EDENIED);
	assert_non_null(strstr(ag_error_last(), "/etc/shadow: Permission denied"));
	assert_int_equal(call_mode("outside", &out, &info), AG_EDENIED);
	assert_non_null(strstr(ag_error_last(), "Permission denied"));
	assert_still_serving();
}

static void test_writes(void **state)
{
	(void)state;
	json_t *out;
	tools_call_info info;
	int rc = call_mode("write", &out, &info);
	assert_int_not_equal(rc, 0);
	char path[2048];
	struct stat st;
	snprintf(path, sizeof path, "%s/new.txt", tmpdir);
	assert_int_not_equal(stat(path, &st), 0);
	snprintf(path, sizeof path, "%s/granted/new.txt", tmpdir);
	assert_int_not_equal(stat(path, &st), 0);
	snprintf(path, sizeof path, "%s/granted/ok.txt", tmpdir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 15); /* untouched */
	assert_still_serving();
}

static void test_socket_killed(void **state)
{
	(void)state;
	if (!tools_sandbox_probe()->seccomp)
		skip();
	json_t *out;
	tools_call_info info;
	assert_int_equal(call_mode("socket", &out, &info), AG_EDENIED);
	assert_int_equal(info.signal, SIGSYS);
	assert_non_null(strstr(ag_error_last(), "forbidden system call"));
	assert_still_serving();
}

static void test_fork_bomb(void **state)
{
	(void)state;
	json_t *out;
	tools_call_info info;
	int rc = call_mode("forkbomb", &out, &info);
	assert_int_equal(rc, AG_EDENIED);
	assert_int_equal(info.signal, SIGSYS);
	assert_true(info.wall_ms < 3000);
	assert_still_serving();
}

static void test_alloc_10g(void **state)
{
	(void)state;
	json_t *out;
	tools_call_info info;
	assert_int_equal(call_mode("alloc", &out, &info), AG_ELIMIT);
	assert_non_null(strstr(ag_error_last(), "memory"));
	assert_still_serving();
}

static void test_infinite_loop(void **state)
{
	(void)state;
	json_t *out;
	tools_call_info info;
	/* The CPU limit (1 s) normally fires first; on a loaded machine the wall limit (3 s) may. */
	assert_int_equal(call_mode("loop", &out, &info), AG_ETIMEOUT);
	assert_true(strstr(ag_error_last(), "CPU time") || strstr(ag_error_last(), "wall-clock"));
	assert_true(info.wall_ms < 5000);
	assert_int_equal(call_mode("hang", &out, &info), AG_ETIMEOUT);
	assert_non_null(strstr(ag_error_last(), "wall-clock"));
	assert_true(info.wall_ms >= 2900 && info.wall_ms < 5000);
	assert_still_serving();
}

static void test_print_1g(void **state)
{
	(void)state;
	json_t *out;
	tools_call_info info;
	assert_int_equal(call_mode("print", &out, &info), AG_ELIMIT);
	assert_non_null(strstr(ag_error_last(), "bytes of output"));
	assert_true(info.output_bytes <= (1u << 20));
	assert_still_serving();
}

static void test_execve(void **state)
{
	(void)state;
	json_t *out;
	tools_call_info info;
	assert_int_equal(call_mode("execve", &out, &info), AG_EDENIED);
	assert_int_equal(info.signal, SIGSYS);
	assert_still_serving();
}

static void test_kill_parent_and_garbage(void **state)
{
	(void)state;
	json_t *out;
	tools_call_info info;
	assert_int_not_equal(call_mode("kill", &out, &info), 0); /* we are still here to check */
	assert_int_equal(call_mode("garbage", &out, &info), AG_ECORRUPT);
	assert_still_serving();
}

/* Many calls in a row leave no processes or descriptors behind. */
static void test_no_leftovers(void **state)
{
	(void)state;
	int before = open("/dev/null", O_RDONLY);
	close(before);
	for (int i = 0; i < 50; i++)
		assert_still_serving();
	int after = open("/dev/null", O_RDONLY);
	close(after);
	assert_int_equal(before, after);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* no children left to reap */
	assert_int_equal(errno, ECHILD);
}

/* Every allocation on the call path may fail: the call then fails cleanly, never crashes. */
static void test_allocation_failures(void **state)
{
	(void)state;
	tools_env env = {.tenant = "t"};
	int successes = 0, failures = 0;
	for (long n = 1; n < 400 && successes < 5; n++) {
		json_t *args = json_pack("{s:s}", "expression", "1+1"), *out = NULL;
		ag_alloc_fail_after(n);
		int rc = tools_call(&out, NULL, &env, "calculator", args);
		ag_alloc_fail_after(0);
		if (rc == 0) {
			assert_string_equal(json_string_value(json_object_get(out, "value")), "2");
			successes++;
		} else {
			assert_true(*ag_error_last());
			failures++;
			successes = 0;
		}
		json_decref(out);
		json_decref(args);
	}
	printf("  %d injected failures answered with errors\n", failures);
	assert_true(failures > 0);
	assert_int_equal(successes, 5);
	assert_still_serving();
}

/* The Landlock ruleset for every ABI up to the kernel's: an older ABI's ruleset
 * (what an older kernel gets) still confines reads; ABI 0 (no Landlock)
 * applies nothing and does not fail. Each case runs in a throwaway child. */
static void test_landlock_abis(void **state)
{
	(void)state;
	int top = tools_sandbox_probe()->landlock_abi;
	char granted[2048], outside[2048];
	snprintf(granted, sizeof granted, "%s/granted", tmpdir);
	snprintf(outside, sizeof outside, "%s/secret.txt", tmpdir);
	for (int abi = 0; abi <= top; abi++) {
		pid_t pid = fork();
		if (pid == 0) {
			const char *paths[] = {granted};
			bool writable[] = {false};
			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
			    confine_landlock(abi, paths, writable, 1, NULL, 0))
				_exit(10);
			char ok[2100];
			snprintf(ok, sizeof ok, "%s/ok.txt", granted);
			int a = open(ok, O_RDONLY);
			int b = open(outside, O_RDONLY);
			/* 0: confined as expected; 1: unconfined (expected only for ABI 0) */
			if (a < 0)
				_exit(11);
			_exit(b < 0 ? 0 : 1);
		}
		int st;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st));
		printf("  landlock ABI %d: exit %d\n", abi, WEXITSTATUS(st));
		assert_int_equal(WEXITSTATUS(st), abi == 0 ? 1 : 0);
	}
}

static void test_register_rules(void **state)
{
	(void)state;
	assert_int_equal(tools_register(&hostile), AG_ECONFLICT);
	tools_tool bad = hostile;
	bad.name = "Bad Name";
	assert_int_equal(tools_register(&bad), AG_EINVAL);
	bad.name = "bad_schema";
	bad.schema = "{\"type\": \"object\", \"oneOf\": []}";
	assert_int_equal(tools_register(&bad), AG_EINVAL);
	assert_non_null(strstr(ag_error_last(), "oneOf"));
	assert_null(tools_find("bad_schema"));
	json_t *out;
	tools_env env = {.tenant = "t"};
	json_t *args = json_object();
	assert_int_equal(tools_call(&out, NULL, &env, "no_such_tool", args), AG_ENOTFOUND);
	json_decref(args);
}

int main(void)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_WARN);
	const char *t = getenv("TEST_TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s", t && *t ? t : "/tmp");
	char path[2048];
	snprintf(path, sizeof path, "%s/granted", tmpdir);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/granted/ok.txt", tmpdir);
	ag_write_file(path, "granted content", 15, 0644);
	snprintf(path, sizeof path, "%s/secret.txt", tmpdir);
	ag_write_file(path, "top secret", 10, 0644);
	if (tools_register(&hostile)) {
		fprintf(stderr, "register: %s\n", ag_error_last());
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layers_reported),
		cmocka_unit_test(test_reads_outside_grant),
		cmocka_unit_test(test_writes),
		cmocka_unit_test(test_socket_killed),
		cmocka_unit_test(test_fork_bomb),
		cmocka_unit_test(test_alloc_10g),
		cmocka_unit_test(test_infinite_loop),
		cmocka_unit_test(test_print_1g),
		cmocka_unit_test(test_execve),
		cmocka_unit_test(test_kill_parent_and_garbage),
		cmocka_unit_test(test_no_leftovers),
		cmocka_unit_test(test_register_rules),
		cmocka_unit_test(test_allocation_failures),
		cmocka_unit_test(test_landlock_abis),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
