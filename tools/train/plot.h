/* plot.h: the loss curve of a run as a standalone SVG (no dependencies):
 * training loss per step as a line, validation loss as points, axes with
 * rounded ticks. */
#ifndef FT_PLOT_H
#define FT_PLOT_H

#include <stddef.h>

#include "buf.h"

struct ft_series {
	const double *x, *y;
	size_t n;
};

/* Draw train (line) and val (points, may be empty) into out. */
int ft_plot_loss_svg(struct ft_buf *out, const char *title, const struct ft_series *train,
		     const struct ft_series *val);

#endif
