#include "gos_camera.h"

#include <math.h>

void gos_cam_init(struct gos_cam *c, double vw, double vh)
{
	c->cur = (struct gos_view){.cx = 0, .cy = 0, .zoom = 1};
	c->target = c->cur;
	c->vw = vw;
	c->vh = vh;
}

void gos_view_to_screen(const struct gos_view *v, double vw, double vh,
                        double wx, double wy, double *sx, double *sy)
{
	*sx = (wx - v->cx) * v->zoom + vw * 0.5;
	*sy = (wy - v->cy) * v->zoom + vh * 0.5;
}

void gos_view_to_world(const struct gos_view *v, double vw, double vh,
                       double sx, double sy, double *wx, double *wy)
{
	*wx = (sx - vw * 0.5) / v->zoom + v->cx;
	*wy = (sy - vh * 0.5) / v->zoom + v->cy;
}

static double clamp_zoom(double z)
{
	if (!(z >= GOS_CAM_ZOOM_MIN))
		return GOS_CAM_ZOOM_MIN;
	return z > GOS_CAM_ZOOM_MAX ? GOS_CAM_ZOOM_MAX : z;
}

void gos_view_zoom_at(struct gos_view *v, double vw, double vh,
                      double sx, double sy, double factor)
{
	double wx, wy;
	gos_view_to_world(v, vw, vh, sx, sy, &wx, &wy);
	v->zoom = clamp_zoom(v->zoom * factor);
	/* Solve for the center that puts (wx, wy) back under (sx, sy). */
	v->cx = wx - (sx - vw * 0.5) / v->zoom;
	v->cy = wy - (sy - vh * 0.5) / v->zoom;
}

struct gos_view gos_view_fit(double vw, double vh, double x0, double y0,
                             double x1, double y1, double pad)
{
	struct gos_view v = {.cx = (x0 + x1) * 0.5, .cy = (y0 + y1) * 0.5, .zoom = 1};
	double bw = x1 - x0, bh = y1 - y0;
	double aw = vw - 2 * pad, ah = vh - 2 * pad;
	if (aw < 1)
		aw = 1;
	if (ah < 1)
		ah = 1;
	if (!(bw > 0) && !(bh > 0))
		return v;
	double zx = bw > 0 ? aw / bw : INFINITY;
	double zy = bh > 0 ? ah / bh : INFINITY;
	v.zoom = clamp_zoom(zx < zy ? zx : zy);
	return v;
}

bool gos_cam_step(struct gos_cam *c, double dt, double tau)
{
	if (tau <= 0 || dt <= 0) {
		if (tau <= 0)
			c->cur = c->target;
		return false;
	}
	double k = 1.0 - exp(-dt / tau);
	struct gos_view *a = &c->cur;
	const struct gos_view *b = &c->target;
	/* Interpolate the world point under the screen center in a way that
	 * keeps zooming about a point stable: move center and log(zoom). */
	double lz = log(a->zoom) + (log(b->zoom) - log(a->zoom)) * k;
	a->cx += (b->cx - a->cx) * k;
	a->cy += (b->cy - a->cy) * k;
	a->zoom = exp(lz);
	double px = fabs(b->cx - a->cx) * a->zoom + fabs(b->cy - a->cy) * a->zoom;
	double lzd = fabs(log(b->zoom) - log(a->zoom));
	if (px < 0.05 && lzd < 1e-4) {
		*a = *b;
		return false;
	}
	return true;
}

void gos_cam_pan_pixels(struct gos_cam *c, double dx, double dy)
{
	c->target.cx -= dx / c->target.zoom;
	c->target.cy -= dy / c->target.zoom;
	c->cur.cx -= dx / c->cur.zoom;
	c->cur.cy -= dy / c->cur.zoom;
}

double gos_cam_nice_length(double zoom, double max_px)
{
	double max_world = max_px / zoom;
	double p = pow(10.0, floor(log10(max_world)));
	if (5 * p <= max_world)
		return 5 * p;
	if (2 * p <= max_world)
		return 2 * p;
	return p;
}
