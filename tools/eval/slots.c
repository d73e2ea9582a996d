/* slots.c: slot precision and recall counts of a search turn.
 * A JSON object with a repeated key means what Python's json.loads makes of
 * it, the last value: members shadowed by a later one of the same name are
 * skipped, and lookups find the last. */
#include <string.h>

#include "ft.h"
#include "json.h"
#include "slots.h"

int slots_parse(const char *text, size_t len, cJSON **obj)
{
	*obj = NULL;
	const char *open = memchr(text, '{', len);
	const char *close = NULL;
	for (const char *p = text + len; p > text; p--)
		if (p[-1] == '}') {
			close = p - 1;
			break;
		}
	if (!open || !close || close < open)
		return FT_OK;
	struct ft_err err;
	ft_err_clear(&err);
	int rc = ft_json_parse(open, (size_t)(close - open) + 1, obj, &err);
	if (rc == FT_E_NOMEM)
		return rc;
	if (rc)
		*obj = NULL;
	return FT_OK;
}

/* The last member named key, as Python's dict keeps it. */
static const cJSON *last_member(const cJSON *obj, const char *key)
{
	const cJSON *found = NULL;
	for (const cJSON *m = obj->child; m; m = m->next)
		if (m->string && strcmp(m->string, key) == 0)
			found = m;
	return found;
}

/* true if a later member has m's name (so m is not in the dict). */
static bool shadowed(const cJSON *m)
{
	for (const cJSON *n = m->next; n; n = n->next)
		if (n->string && strcmp(n->string, m->string) == 0)
			return true;
	return false;
}

static bool numbers_equal(const cJSON *a, const cJSON *b)
{
	if (ft_json_is_int(a) && ft_json_is_int(b))
		return ft_json_int(a) == ft_json_int(b);
	return a->valuedouble == b->valuedouble;
}

static bool lists_equal(const cJSON *a, const cJSON *b)
{
	const cJSON *x = a->child, *y = b->child;
	for (; x && y; x = x->next, y = y->next)
		if (!slots_equal(x, y))
			return false;
	return !x && !y;
}

static size_t member_count(const cJSON *obj)
{
	size_t n = 0;
	for (const cJSON *m = obj->child; m; m = m->next)
		n += !shadowed(m);
	return n;
}

static bool objects_equal(const cJSON *a, const cJSON *b)
{
	if (member_count(a) != member_count(b))
		return false;
	for (const cJSON *m = a->child; m; m = m->next) {
		if (shadowed(m))
			continue;
		const cJSON *o = last_member(b, m->string);
		if (!o || !slots_equal(m, o))
			return false;
	}
	return true;
}

bool slots_equal(const cJSON *a, const cJSON *b)
{
	int ta = a->type & 0xFF, tb = b->type & 0xFF;
	if (ta != tb)
		return false;
	switch (ta) {
	case cJSON_Number: return numbers_equal(a, b);
	case cJSON_String: return strcmp(a->valuestring, b->valuestring) == 0;
	case cJSON_Array: return lists_equal(a, b);
	case cJSON_Object: return objects_equal(a, b);
	default: return true;   /* null, true, false: the type is the value */
	}
}

/* Slots of one value: a list's length, else 1. */
static unsigned long long value_size(const cJSON *v)
{
	return cJSON_IsArray(v) ? (unsigned long long)cJSON_GetArraySize(v) : 1;
}

unsigned long long slots_size(const cJSON *obj)
{
	unsigned long long n = 0;
	for (const cJSON *m = obj->child; m; m = m->next)
		if (!shadowed(m))
			n += value_size(m);
	return n;
}

static bool list_contains(const cJSON *list, const cJSON *v)
{
	for (const cJSON *e = list->child; e; e = e->next)
		if (slots_equal(e, v))
			return true;
	return false;
}

/* Correct slots of one predicted value against the label's value of its
 * key: a list counts each element found in the label's list (repeats
 * count again; a label value that is not a list holds none), anything
 * else 1 if equal. */
static unsigned long long value_correct(const cJSON *pred, const cJSON *label)
{
	if (!cJSON_IsArray(pred))
		return slots_equal(pred, label) ? 1 : 0;
	if (!cJSON_IsArray(label))
		return 0;
	unsigned long long n = 0;
	for (const cJSON *e = pred->child; e; e = e->next)
		n += list_contains(label, e);
	return n;
}

void slots_count(const cJSON *pred, const cJSON *label, struct slots *s)
{
	s->truth = slots_size(label);
	s->predicted = s->correct = 0;
	if (!pred)
		return;
	s->predicted = slots_size(pred);
	for (const cJSON *m = pred->child; m; m = m->next) {
		if (shadowed(m) || cJSON_IsNull(m))
			continue;
		const cJSON *l = last_member(label, m->string);
		if (l)
			s->correct += value_correct(m, l);
	}
}
