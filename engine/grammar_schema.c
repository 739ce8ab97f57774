/*
 * JSON Schema to grammar: compiles the subset of JSON Schema that tool
 * parameters and response formats use into the node array grammar.c walks
 * byte by byte (see grammar_internal.h).
 *
 * Keywords fall in three groups. Structural ones are compiled: type (one or a
 * list), properties, required, additionalProperties, items, minItems,
 * maxItems, minLength, maxLength, enum, const, anyOf and oneOf (compiled as
 * anyOf: the two differ only when alternatives overlap). Annotations
 * (description, title, default, examples, $schema, $id, $comment, ...) and
 * keywords that only narrow values inside a shape the grammar already fixes
 * (minimum, maximum, exclusiveMinimum, exclusiveMaximum, multipleOf, pattern,
 * format, uniqueItems, minProperties, maxProperties, ...) are ignored: output
 * always has the right structure and types, and whoever needs those bounds
 * (the tool argument validator) checks them after. Keywords that would change
 * the structure and that the grammar does not implement ($ref, allOf, not,
 * if/then/else, patternProperties, prefixItems, ...) are refused by name, so
 * a schema is never silently loosened.
 */
#include "engine/grammar_internal.h"

#include <stdlib.h>
#include <string.h>

#define MAX_NODES    4096
#define MAX_LITERALS 1024
#define MAX_TEXT     4096

static const char *const refused[] = {"$ref",
				      "$defs",
				      "definitions",
				      "allOf",
				      "not",
				      "if",
				      "then",
				      "else",
				      "patternProperties",
				      "prefixItems",
				      "additionalItems",
				      "contains",
				      "minContains",
				      "maxContains",
				      "dependentSchemas",
				      "dependentRequired",
				      "dependencies",
				      "unevaluatedProperties",
				      "unevaluatedItems",
				      "propertyNames",
				      "$dynamicRef",
				      "$recursiveRef",
				      NULL};

void engine_grammar_options_init(engine_grammar_options *o)
{
	memset(o, 0, sizeof *o);
	o->max_string = 256;
	o->max_items = 64;
	o->max_digits = 15;
	o->max_props = 16;
	o->max_depth = 12;
}

static uint32_t new_node(engine_grammar *g, uint8_t kind)
{
	if (g->n_nodes >= MAX_NODES) {
		ag_error_set(AG_ELIMIT, "schema: more than %d sub-schemas", MAX_NODES);
		return G_NONE;
	}
	if (g->n_nodes == g->cap_nodes) {
		size_t cap = g->cap_nodes ? 2 * g->cap_nodes : 32;
		g_node *n = ag_realloc(g->nodes, cap * sizeof *n);
		if (!n) {
			ag_error_set(AG_ENOMEM, "schema: out of memory");
			return G_NONE;
		}
		g->nodes = n;
		g->cap_nodes = cap;
	}
	g_node *n = &g->nodes[g->n_nodes];
	memset(n, 0, sizeof *n);
	n->kind = kind;
	n->child = G_NONE;
	return (uint32_t)g->n_nodes++;
}

static void set_byte(g_node *n, uint8_t c) { n->first_bytes[c >> 5] |= 1u << (c & 31); }

static int add_text(engine_grammar *g, const char *s, size_t len, uint32_t node)
{
	if (len > MAX_TEXT)
		return ag_error_set(AG_ELIMIT, "schema: a name or enum value longer than %d bytes", MAX_TEXT);
	if (g->n_texts == g->cap_texts) {
		size_t cap = g->cap_texts ? 2 * g->cap_texts : 32;
		g_text *t = ag_realloc(g->texts, cap * sizeof *t);
		if (!t)
			return ag_error_set(AG_ENOMEM, "schema: out of memory");
		g->texts = t;
		g->cap_texts = cap;
	}
	char *copy = ag_malloc(len + 1);
	if (!copy)
		return ag_error_set(AG_ENOMEM, "schema: out of memory");
	memcpy(copy, s, len);
	copy[len] = '\0';
	g->texts[g->n_texts++] = (g_text){.s = copy, .len = (uint32_t)len, .node = node};
	return 0;
}

static int add_alt(engine_grammar *g, uint32_t node)
{
	if (g->n_alts == g->cap_alts) {
		size_t cap = g->cap_alts ? 2 * g->cap_alts : 16;
		uint32_t *a = ag_realloc(g->alts, cap * sizeof *a);
		if (!a)
			return ag_error_set(AG_ENOMEM, "schema: out of memory");
		g->alts = a;
		g->cap_alts = cap;
	}
	g->alts[g->n_alts++] = node;
	return 0;
}

static int text_cmp(const void *a, const void *b)
{
	const g_text *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->s, y->s, n);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Sorts texts [first, end) and refuses duplicates (the same enum value or name twice). */
static int sort_texts(engine_grammar *g, uint32_t first, const char *what)
{
	if (g->n_texts - first < 2)
		return 0;
	qsort(g->texts + first, g->n_texts - first, sizeof *g->texts, text_cmp);
	for (size_t i = first + 1; i < g->n_texts; i++)
		if (text_cmp(&g->texts[i - 1], &g->texts[i]) == 0) {
			if (strcmp(what, "enum") == 0) { /* harmless: keep one */
				ag_free(g->texts[i].s);
				memmove(&g->texts[i], &g->texts[i + 1],
					(g->n_texts - i - 1) * sizeof *g->texts);
				g->n_texts--;
				i--;
				continue;
			}
			return ag_error_set(AG_EINVAL, "schema: %s '%s' given twice", what, g->texts[i].s);
		}
	return 0;
}

/* The JSON text of a value as the grammar expects it: compact, UTF-8 as is, keys in order. */
static int literal_text(char **out, const json_t *v)
{
	*out = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
	return *out ? 0 : ag_error_set(AG_EINVAL, "schema: an enum value cannot be written as JSON");
}

static uint32_t literal_node(engine_grammar *g, const json_t *values, const char *type)
{
	uint32_t id = new_node(g, G_LITERAL);
	if (id == G_NONE)
		return G_NONE;
	uint32_t first = (uint32_t)g->n_texts;
	size_t i;
	const json_t *v;
	if (json_array_size(values) > MAX_LITERALS) {
		ag_error_set(AG_ELIMIT, "schema: more than %d enum values", MAX_LITERALS);
		return G_NONE;
	}
	json_array_foreach(values, i, v)
	{
		if (type) { /* values of another type can never be valid: leave them out */
			bool ok = strcmp(type, "string") == 0    ? json_is_string(v)
				  : strcmp(type, "integer") == 0 ? json_is_integer(v)
				  : strcmp(type, "number") == 0  ? json_is_number(v)
				  : strcmp(type, "boolean") == 0 ? json_is_boolean(v)
				  : strcmp(type, "null") == 0    ? json_is_null(v)
				  : strcmp(type, "object") == 0  ? json_is_object(v)
				  : strcmp(type, "array") == 0   ? json_is_array(v)
								 : false;
			if (!ok)
				continue;
		}
		if (json_is_real(v)) { /* jansson may write 1e+20 or 1.0: keep to plain decimals */
			double d = json_real_value(v);
			if (!(d > -1e15 && d < 1e15)) {
				ag_error_set(AG_EUNSUPPORTED, "schema: enum number %g is too large", d);
				return G_NONE;
			}
		}
		char *text;
		if (literal_text(&text, v))
			return G_NONE;
		int rc = add_text(g, text, strlen(text), G_NONE);
		free(text); /* jansson's allocation */
		if (rc)
			return G_NONE;
	}
	if (g->n_texts == first) {
		ag_error_set(AG_EINVAL, "schema: enum/const allows no value%s%s", type ? " of type " : "",
			     type ? type : "");
		return G_NONE;
	}
	if (sort_texts(g, first, "enum"))
		return G_NONE;
	g_node *n = &g->nodes[id];
	n->first = first;
	n->n = (uint32_t)(g->n_texts - first);
	for (uint32_t k = 0; k < n->n; k++)
		set_byte(n, (uint8_t)g->texts[first + k].s[0]);
	return id;
}

static uint32_t fixed_literal(engine_grammar *g, const char *json)
{
	json_t *v = json_loads(json, 0, NULL);
	uint32_t id = v ? literal_node(g, v, NULL) : G_NONE;
	json_decref(v);
	if (!v)
		ag_error_set(AG_ENOMEM, "schema: out of memory");
	return id;
}

static void set_number_bytes(g_node *n)
{
	set_byte(n, '-');
	for (int c = '0'; c <= '9'; c++)
		set_byte(n, (uint8_t)c);
}

static uint32_t string_node(engine_grammar *g, uint32_t min, uint32_t max)
{
	uint32_t id = new_node(g, G_STRING);
	if (id != G_NONE) {
		g->nodes[id].min = min;
		g->nodes[id].max = max;
		set_byte(&g->nodes[id], '"');
	}
	return id;
}

/* The schemaless value: a union of every kind, its containers holding schemaless values. */
static uint32_t any_node(engine_grammar *g)
{
	if (g->any != G_NONE)
		return g->any;
	uint32_t u = new_node(g, G_UNION);
	uint32_t obj = new_node(g, G_OBJECT), arr = new_node(g, G_ARRAY);
	uint32_t str = string_node(g, 0, g->opt.max_string), num = new_node(g, G_NUMBER);
	uint32_t lit = fixed_literal(g, "[true, false, null]");
	if (u == G_NONE || obj == G_NONE || arr == G_NONE || str == G_NONE || num == G_NONE || lit == G_NONE)
		return G_NONE;
	g->any = u;
	g_node *n = g->nodes;
	n[obj].child = u;
	n[obj].flags = G_CONTAINER;
	set_byte(&n[obj], '{');
	n[arr].child = u;
	n[arr].flags = G_CONTAINER;
	n[arr].max = g->opt.max_items;
	set_byte(&n[arr], '[');
	set_number_bytes(&n[num]);
	uint32_t parts[] = {obj, arr, str, num, lit};
	n[u].first = (uint32_t)g->n_alts;
	for (size_t i = 0; i < 5; i++) {
		if (add_alt(g, parts[i]))
			return G_NONE;
		for (int w = 0; w < 8; w++)
			n[u].first_bytes[w] |= n[parts[i]].first_bytes[w];
	}
	n[u].n = 5;
	return u;
}

static uint32_t compile(engine_grammar *g, const json_t *s, unsigned depth, const char *path);

static int get_count(const json_t *s, const char *key, uint32_t *out, const char *path)
{
	const json_t *v = json_object_get(s, key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return ag_error_set(AG_EINVAL, "schema%s: %s must be a non-negative integer", path, key);
	*out = json_integer_value(v) > UINT32_MAX ? UINT32_MAX : (uint32_t)json_integer_value(v);
	return 0;
}

static uint32_t object_node(engine_grammar *g, const json_t *s, unsigned depth, const char *path)
{
	const json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
	const json_t *add = json_object_get(s, "additionalProperties");
	if (props && !json_is_object(props)) {
		ag_error_set(AG_EINVAL, "schema%s: properties must be an object", path);
		return G_NONE;
	}
	if (req && !json_is_array(req)) {
		ag_error_set(AG_EINVAL, "schema%s: required must be an array of names", path);
		return G_NONE;
	}
	if (add && !json_is_boolean(add) && !json_is_object(add)) {
		ag_error_set(AG_EINVAL, "schema%s: additionalProperties must be a boolean or a schema", path);
		return G_NONE;
	}
	uint32_t id = new_node(g, G_OBJECT);
	if (id == G_NONE)
		return G_NONE;
	uint32_t additional = G_NONE;
	if (json_is_object(add))
		additional = compile(g, add, depth + 1, path);
	else if (json_is_true(add) || (!add && !g->opt.closed_objects))
		additional = any_node(g);
	if ((add && json_is_object(add) && additional == G_NONE) ||
	    ((json_is_true(add) || (!add && !g->opt.closed_objects)) && additional == G_NONE))
		return G_NONE;
	/* Children first (they add texts of their own), then this object's names in one run. */
	size_t np = json_object_size(props) + json_array_size(req);
	uint32_t *sub = ag_calloc(np ? np : 1, sizeof *sub);
	const char **names = ag_calloc(np ? np : 1, sizeof *names);
	size_t k = 0;
	int rc = sub && names ? 0 : ag_error_set(AG_ENOMEM, "schema: out of memory");
	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)props, key, v)
	{
		if (rc)
			break;
		char sub_path[256];
		snprintf(sub_path, sizeof sub_path, "%s.%s", path, key);
		names[k] = key;
		sub[k] = compile(g, v, depth + 1, sub_path);
		rc = sub[k++] == G_NONE ? -1 : 0;
	}
	size_t i;
	json_array_foreach(req, i, v)
	{
		if (rc)
			break;
		if (!json_is_string(v)) {
			rc = ag_error_set(AG_EINVAL, "schema%s: required must be an array of names", path);
			break;
		}
		if (json_object_get(props, json_string_value(v)))
			continue;
		/* Required but not declared: an additional property that must be there. */
		if (additional == G_NONE) {
			rc = ag_error_set(AG_EINVAL,
					  "schema%s: '%s' is required but additionalProperties is false and "
					  "it is not among the properties",
					  path, json_string_value(v));
			break;
		}
		bool dup = false;
		for (size_t j = 0; j < k; j++)
			dup |= strcmp(names[j], json_string_value(v)) == 0;
		if (!dup) {
			names[k] = json_string_value(v);
			sub[k++] = additional;
		}
	}
	if (!rc && k > G_MAX_PROPS)
		rc = ag_error_set(AG_ELIMIT, "schema%s: more than %d properties", path, G_MAX_PROPS);
	uint32_t first = (uint32_t)g->n_texts;
	for (size_t j = 0; j < k && !rc; j++) {
		/* The name as JSON writes it, without its quotes. */
		json_t *js = json_string(names[j]);
		char *text = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
		json_decref(js);
		if (!text) {
			rc = ag_error_set(AG_EINVAL, "schema%s: property name is not valid UTF-8", path);
			break;
		}
		rc = add_text(g, text + 1, strlen(text) - 2, sub[j]);
		free(text);
	}
	ag_free(sub);
	ag_free(names);
	if (!rc)
		rc = sort_texts(g, first, "property");
	if (rc)
		return G_NONE;
	g_node *n = &g->nodes[id];
	n->first = first;
	n->n = (uint32_t)k;
	n->child = additional;
	set_byte(n, '{');
	for (uint32_t j = 0; j < n->n; j++) {
		const g_text *t = &g->texts[first + j];
		/* required holds the decoded names; compare them with the encoded ones decoded */
		json_array_foreach(req, i, v)
		{
			json_t *js = json_string(json_string_value(v));
			char *enc = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
			json_decref(js);
			if (enc && strlen(enc) == t->len + 2 && memcmp(enc + 1, t->s, t->len) == 0)
				n->required |= 1ull << j;
			free(enc);
		}
	}
	return id;
}

static uint32_t typed_node(engine_grammar *g, const json_t *s, const char *type, unsigned depth,
			   const char *path)
{
	const json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
	if (en || cn) {
		if (en && !json_is_array(en)) {
			ag_error_set(AG_EINVAL, "schema%s: enum must be an array", path);
			return G_NONE;
		}
		json_t *vals = en ? json_incref((json_t *)en) : json_pack("[O]", cn);
		uint32_t id = vals ? literal_node(g, vals, type) : G_NONE;
		json_decref(vals);
		return id;
	}
	if (!type)
		return any_node(g);
	if (strcmp(type, "object") == 0)
		return object_node(g, s, depth, path);
	if (strcmp(type, "array") == 0) {
		uint32_t min = 0, max = UINT32_MAX;
		if (get_count(s, "minItems", &min, path) || get_count(s, "maxItems", &max, path))
			return G_NONE;
		/* An explicit maxItems bounds the array already; the cap is for arrays without one. */
		if (max == UINT32_MAX)
			max = g->opt.max_items > min ? g->opt.max_items : min;
		if (max > 65536)
			max = 65536 > min ? 65536 : min;
		if (min > max || min > 1024) {
			ag_error_set(min > max ? AG_EINVAL : AG_ELIMIT, "schema%s: minItems %u cannot be met",
				     path, min);
			return G_NONE;
		}
		const json_t *items = json_object_get(s, "items");
		char sub_path[256];
		snprintf(sub_path, sizeof sub_path, "%s[]", path);
		uint32_t child = items ? compile(g, items, depth + 1, sub_path) : any_node(g);
		if (child == G_NONE)
			return G_NONE;
		uint32_t id = new_node(g, G_ARRAY);
		if (id == G_NONE)
			return G_NONE;
		g->nodes[id].child = child;
		g->nodes[id].min = min;
		g->nodes[id].max = max;
		set_byte(&g->nodes[id], '[');
		return id;
	}
	if (strcmp(type, "string") == 0) {
		uint32_t min = 0, max = UINT32_MAX;
		if (get_count(s, "minLength", &min, path) || get_count(s, "maxLength", &max, path))
			return G_NONE;
		/* An explicit maxLength bounds the string already; the cap is for strings without one. */
		if (max == UINT32_MAX)
			max = g->opt.max_string > min ? g->opt.max_string : min;
		if (max > (1u << 20))
			max = (1u << 20) > min ? (1u << 20) : min;
		if (min > max || min > 65536) {
			ag_error_set(min > max ? AG_EINVAL : AG_ELIMIT,
				     "schema%s: minLength %u cannot be met", path, min);
			return G_NONE;
		}
		return string_node(g, min, max);
	}
	if (strcmp(type, "number") == 0 || strcmp(type, "integer") == 0) {
		uint32_t id = new_node(g, type[0] == 'n' ? G_NUMBER : G_INTEGER);
		if (id != G_NONE)
			set_number_bytes(&g->nodes[id]);
		return id;
	}
	if (strcmp(type, "boolean") == 0)
		return fixed_literal(g, "[true, false]");
	if (strcmp(type, "null") == 0)
		return fixed_literal(g, "[null]");
	ag_error_set(AG_EINVAL, "schema%s: unknown type '%s'", path, type);
	return G_NONE;
}

/* A union of alternatives, flattened (a union inside a union adds its alternatives). */
static uint32_t union_of(engine_grammar *g, const uint32_t *parts, size_t n)
{
	if (n == 1)
		return parts[0];
	uint32_t u = new_node(g, G_UNION);
	if (u == G_NONE)
		return G_NONE;
	g->nodes[u].first = (uint32_t)g->n_alts;
	for (size_t i = 0; i < n; i++) {
		const g_node *p = &g->nodes[parts[i]];
		if (p->kind == G_UNION) {
			for (uint32_t j = 0; j < p->n; j++)
				if (add_alt(g, g->alts[p->first + j]))
					return G_NONE;
		} else if (add_alt(g, parts[i])) {
			return G_NONE;
		}
		for (int w = 0; w < 8; w++)
			g->nodes[u].first_bytes[w] |= g->nodes[parts[i]].first_bytes[w];
	}
	g->nodes[u].n = (uint32_t)(g->n_alts - g->nodes[u].first);
	return u;
}

static uint32_t compile(engine_grammar *g, const json_t *s, unsigned depth, const char *path)
{
	if (depth > g->opt.max_depth) {
		ag_error_set(AG_ELIMIT, "schema%s: nested deeper than %u", path, g->opt.max_depth);
		return G_NONE;
	}
	if (json_is_true(s))
		return any_node(g);
	if (!json_is_object(s)) {
		ag_error_set(AG_EINVAL, "schema%s: a schema must be an object%s", path,
			     json_is_false(s) ? " (false allows nothing)" : "");
		return G_NONE;
	}
	for (int i = 0; refused[i]; i++)
		if (json_object_get(s, refused[i])) {
			ag_error_set(AG_EUNSUPPORTED, "schema%s: '%s' is not supported", path, refused[i]);
			return G_NONE;
		}
	const json_t *any = json_object_get(s, "anyOf");
	if (!any)
		any = json_object_get(s, "oneOf");
	if (any) {
		if (!json_is_array(any) || json_array_size(any) == 0 || json_array_size(any) > 64) {
			ag_error_set(AG_EINVAL, "schema%s: anyOf/oneOf must be an array of 1 to 64 schemas",
				     path);
			return G_NONE;
		}
		static const char *const structural[] = {
			"type",  "properties",           "items",     "enum",      "const", "required",
			"anyOf", "additionalProperties", "minLength", "maxLength", NULL};
		int n_struct = 0;
		for (int i = 0; structural[i]; i++)
			n_struct += json_object_get(s, structural[i]) != NULL;
		if (n_struct > 1 || (json_object_get(s, "anyOf") && json_object_get(s, "oneOf"))) {
			ag_error_set(
				AG_EUNSUPPORTED,
				"schema%s: anyOf/oneOf beside other structural keywords is not supported",
				path);
			return G_NONE;
		}
		uint32_t parts[64];
		size_t i;
		const json_t *alt;
		json_array_foreach(any, i, alt)
		{
			char sub_path[256];
			snprintf(sub_path, sizeof sub_path, "%s.anyOf[%zu]", path, i);
			if ((parts[i] = compile(g, alt, depth + 1, sub_path)) == G_NONE)
				return G_NONE;
		}
		return union_of(g, parts, json_array_size(any));
	}
	const json_t *type = json_object_get(s, "type");
	if (json_is_array(type)) {
		size_t n = json_array_size(type), i;
		const json_t *t;
		if (n == 0 || n > 7) {
			ag_error_set(AG_EINVAL, "schema%s: type must list 1 to 7 types", path);
			return G_NONE;
		}
		uint32_t parts[7];
		json_array_foreach(type, i, t)
		{
			if (!json_is_string(t)) {
				ag_error_set(AG_EINVAL,
					     "schema%s: type must be a string or an array of strings", path);
				return G_NONE;
			}
			if ((parts[i] = typed_node(g, s, json_string_value(t), depth, path)) == G_NONE)
				return G_NONE;
		}
		return union_of(g, parts, n);
	}
	if (type && !json_is_string(type)) {
		ag_error_set(AG_EINVAL, "schema%s: type must be a string or an array of strings", path);
		return G_NONE;
	}
	const char *t = json_string_value(type);
	if (!t) { /* no type: what the keywords imply */
		if (json_object_get(s, "properties") || json_object_get(s, "required") ||
		    json_object_get(s, "additionalProperties"))
			t = "object";
		else if (json_object_get(s, "items") || json_object_get(s, "minItems") ||
			 json_object_get(s, "maxItems"))
			t = "array";
		else if (json_object_get(s, "minLength") || json_object_get(s, "maxLength"))
			t = "string";
	}
	return typed_node(g, s, t, depth, path);
}

static int grammar_new(engine_grammar **out, const engine_grammar_options *opt)
{
	*out = NULL;
	engine_grammar *g = ag_calloc(1, sizeof *g);
	if (!g)
		return ag_error_set(AG_ENOMEM, "schema: out of memory");
	g->any = G_NONE;
	if (opt)
		g->opt = *opt;
	else
		engine_grammar_options_init(&g->opt);
	engine_grammar_options *o = &g->opt;
	if (o->max_digits < 1 || o->max_digits > 18 || o->max_depth < 1 || o->max_depth > G_DEPTH_LIMIT ||
	    o->max_string < 1 || o->max_items < 1) {
		ag_free(g);
		return ag_error_set(AG_EINVAL,
				    "grammar: max_digits must be 1..18, max_depth 1..%d, "
				    "max_string and max_items at least 1",
				    G_DEPTH_LIMIT);
	}
	g->prefix = ag_strdup(o->prefix ? o->prefix : "");
	g->suffix = ag_strdup(o->suffix ? o->suffix : "");
	if (!g->prefix || !g->suffix) {
		engine_grammar_free(g);
		return ag_error_set(AG_ENOMEM, "schema: out of memory");
	}
	g->prefix_len = (uint32_t)strlen(g->prefix);
	g->suffix_len = (uint32_t)strlen(g->suffix);
	o->prefix = g->prefix;
	o->suffix = g->suffix;
	/* Node 0 is the document frame's. */
	if (new_node(g, G_DOC) == G_NONE) {
		engine_grammar_free(g);
		return AG_ENOMEM;
	}
	*out = g;
	return 0;
}

int engine_grammar_compile(engine_grammar **out, const json_t *schema, const engine_grammar_options *opt)
{
	engine_grammar *g;
	int rc = grammar_new(&g, opt);
	if (rc)
		return rc;
	*out = NULL;
	g->root = compile(g, schema, 0, "");
	if (g->root == G_NONE) {
		rc = ag_error_code();
		engine_grammar_free(g);
		return rc ? rc : AG_EINVAL;
	}
	*out = g;
	return 0;
}

/* The tool-call object {"name": NAME, "arguments": ARGS}: one object node whose keys come in
 * that order (G_TOOLS), so the name, read first, picks the arguments' schema. Done as an
 * anyOf of one object per tool, every tool would fork a stack at the opening brace and
 * parse the arguments under all of them at once if they came first. */
static uint32_t tools_node(engine_grammar *g, const json_t *fns, const json_t *names)
{
	uint32_t id = new_node(g, G_OBJECT);
	uint32_t lit = id == G_NONE ? G_NONE : literal_node(g, names, "string");
	if (lit == G_NONE)
		return G_NONE;
	if (g->nodes[lit].n != json_array_size(names)) {
		ag_error_set(AG_EINVAL, "tools: two tools have the same name");
		return G_NONE;
	}
	/* Arguments by the name's place among the sorted literals. */
	uint32_t args[64];
	for (uint32_t k = 0; k < g->nodes[lit].n; k++) {
		/* The text itself, not a pointer into texts: compiling the arguments grows it. */
		const char *name_text = g->texts[g->nodes[lit].first + k].s;
		size_t name_len = g->texts[g->nodes[lit].first + k].len;
		size_t i;
		const json_t *f;
		json_array_foreach(fns, i, f)
		{
			char *enc = json_dumps(json_object_get(f, "name"), JSON_ENCODE_ANY);
			bool same = enc && strlen(enc) == name_len && memcmp(enc, name_text, name_len) == 0;
			free(enc);
			if (!same)
				continue;
			const json_t *params = json_object_get(f, "parameters");
			char path[96];
			snprintf(path, sizeof path, "(%s arguments)",
				 json_string_value(json_object_get(f, "name")));
			json_t *empty = params ? NULL : json_pack("{s:s}", "type", "object");
			args[k] = compile(g, params ? params : empty, 1, path);
			json_decref(empty);
			if (args[k] == G_NONE)
				return G_NONE;
		}
	}
	g_node *n = &g->nodes[id];
	n->flags = G_TOOLS;
	n->min = (uint32_t)g->n_alts;
	for (uint32_t k = 0; k < g->nodes[lit].n; k++)
		if (add_alt(g, args[k]))
			return G_NONE;
	n = &g->nodes[id];
	n->first = (uint32_t)g->n_texts; /* "arguments" sorts before "name" */
	if (add_text(g, "arguments", 9, G_NONE) || add_text(g, "name", 4, lit))
		return G_NONE;
	n->n = 2;
	n->required = 3;
	set_byte(n, '{');
	return id;
}

int engine_grammar_compile_tools(engine_grammar **out, const json_t *tools, const char *only,
				 const engine_grammar_options *opt)
{
	*out = NULL;
	if (!json_is_array(tools) || json_array_size(tools) == 0 || json_array_size(tools) > 64)
		return ag_error_set(AG_EINVAL, "tools: expected an array of 1 to 64 tools");
	json_t *fns = json_array(), *names = json_array();
	size_t i;
	const json_t *t;
	int rc = fns && names ? 0 : ag_error_set(AG_ENOMEM, "tools: out of memory");
	json_array_foreach(tools, i, t)
	{
		const json_t *f = json_object_get(t, "function");
		if (!f)
			f = t;
		const char *name = json_string_value(json_object_get(f, "name"));
		if (rc)
			break;
		if (!name) {
			rc = ag_error_set(AG_EINVAL, "tools[%zu]: no function name", i);
			break;
		}
		if (only && strcmp(only, name) != 0)
			continue;
		json_array_append(fns, (json_t *)f);
		json_array_append_new(names, json_string(name));
	}
	if (!rc && json_array_size(fns) == 0)
		rc = ag_error_set(AG_EINVAL, "tools: no tool named '%s'", only ? only : "");
	engine_grammar *g = NULL;
	if (!rc)
		rc = grammar_new(&g, opt);
	if (!rc && (g->root = tools_node(g, fns, names)) == G_NONE)
		rc = ag_error_code() ? ag_error_code() : AG_EINVAL;
	json_decref(fns);
	json_decref(names);
	if (rc) {
		engine_grammar_free(g);
		return rc;
	}
	*out = g;
	return 0;
}

void engine_grammar_free(engine_grammar *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n_texts; i++)
		ag_free(g->texts[i].s);
	ag_free(g->texts);
	ag_free(g->nodes);
	ag_free(g->alts);
	ag_free(g->prefix);
	ag_free(g->suffix);
	ag_free(g);
}
