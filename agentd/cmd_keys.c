/* `agentd keys create --tenant T --user U --role R`: prints a new API key once. */
#include "agentd/auth.h"
#include "agentd/cli.h"

#include <stdio.h>
#include <string.h>

int agentd_cmd_keys(int argc, char **argv)
{
	if (argc < 1 || strcmp(argv[0], "create") != 0) {
		fprintf(stderr, "usage: agentd keys create --tenant T --user U --role R [--data DIR]\n");
		return 2;
	}
	agentd_config *cfg;
	if (agentd_config_new(&cfg)) {
		fprintf(stderr, "agentd: %s\n", ag_error_last());
		return 1;
	}
	static const char *const extra[] = {"tenant", "user", "role", NULL};
	const char *vals[3], *pos[1];
	int npos, status;
	if ((status = agentd_cli_parse(argc - 1, argv + 1, cfg, extra, vals, pos, 0, &npos)))
		goto out;
	if (!vals[0] || !vals[1] || !vals[2]) {
		fprintf(stderr, "agentd: keys create needs --tenant, --user and --role\n");
		status = 2;
		goto out;
	}
	sqlite3 *db;
	char *key = NULL, *key_id = NULL;
	if (agentd_store_open(cfg, &db)) {
		fprintf(stderr, "agentd: %s\n", ag_error_last());
		status = 1;
		goto out;
	}
	int rc = agentd_auth_create_key(db, vals[0], vals[1], vals[2], &key, &key_id);
	ag_db_close(db);
	if (rc) {
		fprintf(stderr, "agentd: %s\n", ag_error_last());
		status = rc == AG_EINVAL ? 2 : 1;
		goto out;
	}
	printf("%s\n", key);
	fprintf(stderr, "agentd: key %s for %s/%s (%s); it is shown only this once\n", key_id, vals[0],
		vals[1], vals[2]);
	memset(key, 0, strlen(key));
	ag_free(key);
	ag_free(key_id);
	status = 0;
out:
	agentd_config_free(cfg);
	return status;
}
