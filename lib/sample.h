/* sample.h: the sample format that ft-template writes and ft-tokenize reads
 * (docs/formats.md). A sample is ordered segments of rendered text, each
 * flagged trained or not and template text or data; only template text may
 * become special tokens. This module turns a render into segments and writes
 * them as JSON; it borrows the render's text. */
#ifndef FT_SAMPLE_H
#define FT_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include <cjson/cJSON.h>

#include "ft.h"
#include "jinja.h"

struct ft_segment {
	size_t off, len;       /* bytes of the render's text */
	const void *origin;    /* cJSON node the data came from, NULL for template text */
	bool train;            /* the model is trained on these bytes */
	bool data;             /* came from data: never a special token */
};

struct ft_segments {
	struct ft_segment *v;
	size_t n, cap;
};

void ft_segments_init(struct ft_segments *s);
void ft_segments_release(struct ft_segments *s);
/* Cover r's whole text with segments, one per run of equal provenance. */
int ft_segments_from_render(struct ft_segments *s, const struct ft_render *r);
/* Merge neighbours with equal train and data flags (origins are dropped). */
void ft_segments_merge(struct ft_segments *s);

/* Read a sample record's text into text (reset first) and its segments
 * into s (offsets into text): "segments" as ft-template writes them
 * ("train" and "template" default to false), or a plain {"text": ...}
 * record, which is one trained data segment (pretraining text). Empty
 * segments are dropped; neighbours are not merged. */
int ft_sample_read(const cJSON *rec, struct ft_buf *text, struct ft_segments *s,
		   struct ft_err *err);

/* Append "segments":[...] for segs[from..to) of text, all with train forced
 * off when untrain is set. */
int ft_sample_write_segments(struct ft_buf *b, const char *text, const struct ft_segment *segs,
			     size_t from, size_t to, bool untrain);

#endif
