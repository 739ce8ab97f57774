/*
 * The daemon's database: DATA/agentd.db, opened in WAL mode, with every
 * module's schema brought up to date by its migrations at open.
 */
#include "agentd/cli.h"
#include "agentd/audit.h"
#include "agentd/auth.h"
#include "memory/memory.h"
#include "agentd/runs.h"
#include "agentd/planner.h"
#include "retrieval/retrieval.h"
#include "policies/policies.h"
#include "tools/tools.h"

#include <limits.h>
#include <stdio.h>

int agentd_store_open(const agentd_config *cfg, sqlite3 **out)
{
	const char *dir = agentd_config_get(cfg, "data");
	char path[PATH_MAX];
	int rc = ag_mkdirs(dir, 0700);
	if (rc)
		return rc;
	if ((size_t)snprintf(path, sizeof path, "%s/agentd.db", dir) >= sizeof path)
		return ag_error_set(AG_EINVAL, "data directory path too long");
	sqlite3 *db;
	if ((rc = ag_db_open(&db, path)))
		return rc;
	/* Each module brings its own tables up to date; order follows dependencies. */
	/* clang-format off */
	int (*const migrations[])(sqlite3 *) = {
		agentd_auth_migrate,
		agentd_audit_migrate,
		memory_migrate,
		retrieval_migrate,
		tools_migrate,
		policies_migrate,
		agentd_runs_migrate,
		agentd_workflows_migrate,
	};
	/* clang-format on */
	for (size_t i = 0; i < sizeof migrations / sizeof migrations[0]; i++) {
		if ((rc = migrations[i](db))) {
			ag_db_close(db);
			return rc;
		}
	}
	*out = db;
	return 0;
}
