/* report.h: ft-eval's sums and how they are shown. A struct stats adds up
 * turn scores; a struct breakdown keeps one struct stats per value of a
 * field (its compact JSON text), in a hash index, and owns the values'
 * text. Writers append to an ft_buf and return 0 or FT_E_NOMEM. */
#ifndef FT_EVAL_REPORT_H
#define FT_EVAL_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "arena.h"
#include "buf.h"
#include "slots.h"

enum turn_kind { KIND_SEARCH, KIND_ASSISTANT, KIND_OTHER, KIND_COUNT };

extern const char *const turn_kind_names[KIND_COUNT];

/* The scores of one turn. */
struct turn {
	enum turn_kind kind;
	bool exact;                /* prediction == reference, both trimmed */
	bool parsed;               /* search: the prediction had a JSON object */
	struct slots slots;        /* search */
	bool reply;                /* assistant: the prediction is an assistant reply */
	double bleu;               /* assistant: sentence BLEU-4, 0 when !reply */
};

struct stats {
	unsigned long long turns, exact;
	unsigned long long kind_turns[KIND_COUNT];
	unsigned long long unparsable;    /* search turns without a parsable prediction */
	struct slots slots;               /* summed over search turns (micro average) */
	unsigned long long not_reply;     /* assistant turns whose prediction is no reply */
	double bleu_sum;                  /* summed in input order */
};

void stats_add(struct stats *st, const struct turn *t);

/* The metrics of a stats; false when undefined (no turn of that kind). */
bool stats_exact_match(const struct stats *st, double *v);
bool stats_slot_p(const struct stats *st, double *v);
bool stats_slot_r(const struct stats *st, double *v);
bool stats_slot_f1(const struct stats *st, double *v);
bool stats_bleu(const struct stats *st, double *v);

struct group {
	const char *key;           /* compact JSON of the value ("null" when absent) */
	size_t key_len;
	bool is_number;
	double number;
	struct stats st;
};

struct breakdown {
	const char *field;         /* dotted path, the caller's */
	struct group *groups;
	size_t count, cap;
	uint32_t *index;           /* open addressing: group position + 1, 0 empty */
	size_t nslots;
	struct ft_arena keys;
};

void breakdown_init(struct breakdown *b, const char *field);
void breakdown_release(struct breakdown *b);
/* Add a turn to the group of the record's field value. */
int breakdown_add(struct breakdown *b, const cJSON *rec, const struct turn *t);
/* Sort the groups for showing: numbers by value, then the rest by text. */
void breakdown_sort(struct breakdown *b);

/* The whole report: the total, one stats per kind, the breakdowns. */
struct report {
	struct stats total;
	struct stats kinds[KIND_COUNT];
	struct breakdown *by;
	size_t nby;
	unsigned long long bad;
};

int report_write_table(struct ft_buf *out, const struct report *r);
int report_write_json(struct ft_buf *out, const struct report *r);
/* One --per-turn line (without the newline). id may be NULL. */
int report_write_turn(struct ft_buf *out, const cJSON *id, const struct turn *t);

#endif
