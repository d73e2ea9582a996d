/* slots.h: slot counts of a structured (search) turn, as DESIGN.md section 3
 * defines them. Pure functions over cJSON trees the caller owns; parsing
 * returns a new tree (the caller deletes it) or NULL when there is none. */
#ifndef FT_EVAL_SLOTS_H
#define FT_EVAL_SLOTS_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* Counts of one turn (or, summed, of many). */
struct slots {
	unsigned long long correct;    /* predicted slots found in the label */
	unsigned long long predicted;  /* slots of the prediction */
	unsigned long long truth;      /* slots of the label ("true slots") */
};

/* The JSON object from the first '{' to the last '}' of text[0..len), parsed;
 * NULL if there is no such span or it is not valid JSON. Returns FT_E_NOMEM
 * only when out of memory, else 0. */
int slots_parse(const char *text, size_t len, cJSON **obj);

/* The slots of an object: per key, the length of a list value, else 1
 * (a null value counts 1). */
unsigned long long slots_size(const cJSON *obj);

/* Count one turn. pred NULL: an unparsable prediction (0 correct, 0
 * predicted, the label's slots still true slots). */
void slots_count(const cJSON *pred, const cJSON *label, struct slots *s);

/* JSON value equality: numbers by value (4 == 4.0), strings by bytes,
 * lists in order, objects by key set; true and 1 differ. */
bool slots_equal(const cJSON *a, const cJSON *b);

#endif
