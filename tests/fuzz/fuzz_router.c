/* Fuzz harness: route matching and percent-decoding of arbitrary methods and paths. */
#include <stdint.h>
#include <string.h>

#include "agentd/daemon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH"};
	if (size == 0)
		return 0;
	ag_arena *arena = ag_arena_new(1024);
	if (!arena)
		return 0;
	char *path = ag_arena_strndup(arena, (const char *)data + 1, size - 1);
	if (path) {
		agentd_match m;
		if (agentd_router_match(methods[data[0] % 5], path, arena, &m) == 0 && m.route) {
			for (int i = 0; i < m.nparams; i++)
				(void)strlen(m.param_values[i]);
		}
	}
	ag_arena_free(arena);
	return 0;
}
