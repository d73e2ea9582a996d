/* plot.c: loss curves as SVG (contract in plot.h). */
#include "plot.h"

#include <math.h>
#include <string.h>


enum { W = 720, H = 420, LEFT = 64, RIGHT = 20, TOP = 36, BOTTOM = 48 };

/* A "nice" tick step for a span split in about n parts: 1, 2 or 5 x 10^k. */
static double tick_step(double span, int n)
{
	double raw = span / n, p = pow(10.0, floor(log10(raw))), f = raw / p;
	return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void range(const struct ft_series *s, double *lo, double *hi, int axis)
{
	for (size_t i = 0; s && i < s->n; i++) {
		double v = axis ? s->y[i] : s->x[i];
		if (!isfinite(v))
			continue;
		if (v < *lo)
			*lo = v;
		if (v > *hi)
			*hi = v;
	}
}

int ft_plot_loss_svg(struct ft_buf *out, const char *title, const struct ft_series *train,
		     const struct ft_series *val)
{
	double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
	range(train, &x0, &x1, 0);
	range(val, &x0, &x1, 0);
	range(train, &y0, &y1, 1);
	range(val, &y0, &y1, 1);
	if (!(x0 <= x1)) {
		x0 = 0;
		x1 = 1;
		y0 = 0;
		y1 = 1;
	}
	if (x1 - x0 < 1)
		x1 = x0 + 1;
	if (y1 - y0 < 1e-6)
		y1 = y0 + 1e-6 + fabs(y0) * 0.01;
	double ys = tick_step(y1 - y0, 6), xs = tick_step(x1 - x0, 8);
	y0 = floor(y0 / ys) * ys;
	y1 = ceil(y1 / ys) * ys;
	double pw = W - LEFT - RIGHT, ph = H - TOP - BOTTOM;
#define PX(v) (LEFT + ((v) - x0) / (x1 - x0) * pw)
#define PY(v) (TOP + (y1 - (v)) / (y1 - y0) * ph)
	int rc = ft_buf_printf(out,
			       "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
			       "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
			       "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
			       W, H, W, H);
	rc |= ft_buf_puts(out, "<text x=\"64\" y=\"22\" font-size=\"14\">");
	for (const char *p = title; *p; p++)   /* XML-escape the title */
		rc |= *p == '<' ? ft_buf_puts(out, "&lt;") : *p == '&' ? ft_buf_puts(out, "&amp;") :
		      ft_buf_putc(out, *p);
	rc |= ft_buf_puts(out, "</text>\n");
	for (double y = y0; y <= y1 + ys / 2; y += ys)
		rc |= ft_buf_printf(out,
				    "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
				    "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
				    LEFT, W - RIGHT, PY(y), PY(y), LEFT - 6, PY(y) + 4, y);
	for (double x = ceil(x0 / xs) * xs; x <= x1 + xs / 1e6; x += xs)
		rc |= ft_buf_printf(out,
				    "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#eee\"/>"
				    "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
				    PX(x), PX(x), TOP, H - BOTTOM, PX(x), H - BOTTOM + 16, x);
	rc |= ft_buf_printf(out,
			    "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">step</text>\n"
			    "<text x=\"16\" y=\"%.1f\" transform=\"rotate(-90 16 %.1f)\" "
			    "text-anchor=\"middle\">loss</text>\n",
			    LEFT + pw / 2, H - 10, TOP + ph / 2, TOP + ph / 2);
	if (train && train->n) {
		rc |= ft_buf_puts(out, "<polyline fill=\"none\" stroke=\"#1f77b4\" "
				       "stroke-width=\"1.5\" points=\"");
		for (size_t i = 0; i < train->n; i++)
			if (isfinite(train->y[i]))
				rc |= ft_buf_printf(out, "%.1f,%.1f ", PX(train->x[i]),
						    PY(train->y[i]));
		rc |= ft_buf_puts(out, "\"/>\n");
	}
	for (size_t i = 0; val && i < val->n; i++)
		if (isfinite(val->y[i]))
			rc |= ft_buf_printf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" "
						 "fill=\"#d62728\"/>\n",
					    PX(val->x[i]), PY(val->y[i]));
	rc |= ft_buf_printf(out,
			    "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"#1f77b4\" "
			    "stroke-width=\"2\"/><text x=\"%d\" y=\"%d\">train</text>\n"
			    "<circle cx=\"%d\" cy=\"%d\" r=\"3.5\" fill=\"#d62728\"/>"
			    "<text x=\"%d\" y=\"%d\">validation</text>\n</svg>\n",
			    W - 200, W - 180, 18, 18, W - 175, 22, W - 110, 18, W - 100, 22);
#undef PX
#undef PY
	return rc ? -1 : 0;
}
