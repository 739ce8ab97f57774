/*
 * For the engine's unit tests: a random Jamba written to the test's
 * temporary directory and loaded; a failure fails the test. Include after
 * cmocka.h and engine/engine.h.
 */
#ifndef AGENTD_TESTS_RANDOM_MODEL_H
#define AGENTD_TESTS_RANDOM_MODEL_H

#include <stdio.h>
#include <stdlib.h>

static inline const char *support_tmpdir(void)
{
	const char *d = getenv("TEST_TMPDIR");
	return d && *d ? d : "/tmp";
}

/* p written as <tmpdir>/<tag>-<seed>-<type>.gguf, then loaded. */
static inline engine_model *support_random_model(const engine_jamba_random *p, const char *tag)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s-%llu-%u.gguf", support_tmpdir(), tag, (unsigned long long)p->seed,
		 p->weight_type);
	if (engine_jamba_random_write(p, path))
		fail_msg("write %s: %s", path, ag_error_last());
	engine_model *m;
	if (engine_model_load(&m, path))
		fail_msg("load %s: %s", path, ag_error_last());
	return m;
}

#endif
