/* {{name.path}} templates over a JSON object of variables, for workflow steps. */
#include "agentd/planner.h"

#include <stdlib.h>
#include <string.h>

/* Looks up "a.b.0.c" in vars: object keys and array indexes. */
static const json_t *lookup(const json_t *vars, const char *path, size_t len)
{
	const json_t *v = vars;
	size_t i = 0;
	while (v && i < len) {
		size_t j = i;
		while (j < len && path[j] != '.')
			j++;
		char key[128];
		if (j - i == 0 || j - i >= sizeof key)
			return NULL;
		memcpy(key, path + i, j - i);
		key[j - i] = '\0';
		if (json_is_object(v)) {
			v = json_object_get(v, key);
		} else if (json_is_array(v)) {
			char *end;
			unsigned long idx = strtoul(key, &end, 10);
			v = *end ? NULL : json_array_get(v, idx);
		} else {
			v = NULL;
		}
		i = j + 1;
	}
	return v;
}

const json_t *agentd_vars_lookup(const json_t *vars, const char *path)
{
	return lookup(vars, path, strlen(path));
}

int agentd_template_expand(const char *tpl, const json_t *vars, char **out)
{
	ag_buf b = AG_BUF_INIT;
	int rc = 0;
	const char *p = tpl;
	while (!rc && *p) {
		const char *open = strstr(p, "{{");
		if (!open) {
			rc = ag_buf_puts(&b, p);
			break;
		}
		const char *close = strstr(open + 2, "}}");
		if (!close) {
			rc = ag_buf_puts(&b, p);
			break;
		}
		rc = ag_buf_append(&b, p, (size_t)(open - p));
		const char *name = open + 2;
		size_t len = (size_t)(close - name);
		while (len && name[0] == ' ') {
			name++;
			len--;
		}
		while (len && name[len - 1] == ' ')
			len--;
		const json_t *v = lookup(vars, name, len);
		if (!rc && v) {
			if (json_is_string(v)) {
				rc = ag_buf_append(&b, json_string_value(v), json_string_length(v));
			} else {
				char *s;
				rc = ag_json_dump(&s, NULL, v);
				if (!rc) {
					rc = ag_buf_puts(&b, s);
					ag_free(s);
				}
			}
		}
		p = close + 2;
	}
	if (!rc && !b.data)
		rc = ag_buf_puts(&b, "");
	if (rc) {
		ag_buf_free(&b);
		return rc;
	}
	*out = ag_buf_detach(&b, NULL);
	return 0;
}
