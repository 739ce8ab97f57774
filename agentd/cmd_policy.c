/*
 * `agentd policy check FILE`: validates a policy file the way the daemon
 * would load it and prints every problem as FILE:LINE: message. Exit 0 when
 * the file is valid, 1 when it is not (or cannot be read), 2 on a usage error.
 * `agentd policy default` prints the built-in default policy, a starting point.
 */
#include "agentd/cli.h"
#include "policies/policies.h"

#include <stdio.h>
#include <string.h>

static int usage(void)
{
	fprintf(stderr, "usage: agentd policy check FILE | agentd policy default\n");
	return 2;
}

int agentd_cmd_policy(int argc, char **argv)
{
	if (argc < 1 || (strcmp(argv[0], "check") != 0 && strcmp(argv[0], "default") != 0))
		return usage();
	/* --data and --config are accepted like everywhere else, and not needed. */
	agentd_config *cfg;
	if (agentd_config_new(&cfg)) {
		fprintf(stderr, "agentd: %s\n", ag_error_last());
		return 1;
	}
	const char *pos[1] = {NULL};
	int npos = 0;
	int st = agentd_cli_parse(argc - 1, argv + 1, cfg, NULL, NULL, pos, 1, &npos);
	agentd_config_free(cfg);
	if (st)
		return st;
	if (strcmp(argv[0], "default") == 0) {
		if (npos != 0)
			return usage();
		fputs(policies_default_text(), stdout);
		return 0;
	}
	if (npos != 1 || !*pos[0])
		return usage();
	const char *path = pos[0];
	ag_log_set_level(AG_LOG_OFF); /* the findings go to stderr below, once each */
	policies_policy *p;
	policies_diag *d = NULL;
	int rc = policies_load_file(&p, &d, path);
	if (rc) {
		char *text = d ? policies_diag_format(d, path) : NULL;
		if (text)
			fputs(text, stderr);
		else
			fprintf(stderr, "agentd: %s\n", ag_error_last());
		fprintf(stderr, "agentd: %s: %d problem%s, not loaded\n", path, d ? d->count : 1,
			d && d->count == 1 ? "" : "s");
		ag_free(text);
		policies_diag_free(d);
		return 1;
	}
	json_t *j = NULL;
	if (policies_describe(&j, p) == 0)
		printf("%s: ok (%zu roles, %zu rules, sha256 %s)\n", path,
		       json_array_size(json_object_get(j, "roles")),
		       json_array_size(json_object_get(j, "rules")), policies_sha256(p));
	json_decref(j);
	policies_release(p);
	return 0;
}
