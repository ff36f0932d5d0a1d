/* gos_camera: the infinite map's camera: where the viewport looks (center in
 * world units, zoom in pixels per world unit), screen<->world conversion,
 * zoom about a point, fit to bounds, and smooth framerate-independent motion
 * toward a target view. Pure math, no GPU.
 *
 * Conventions (those of compute/gos_compute_ref.h): screen = (world -
 * center) * zoom + viewport / 2, pixels, x right, y down. Centers are doubles
 * so that far-away parts of the map keep their precision on the CPU.
 *
 * Threads: a struct gos_cam belongs to one thread (the render thread). */
#ifndef GOS_CAMERA_H
#define GOS_CAMERA_H

#include <stdbool.h>

#define GOS_CAM_ZOOM_MIN 1e-5
#define GOS_CAM_ZOOM_MAX 64.0

struct gos_view {
	double cx, cy;     /* world point at the viewport's center */
	double zoom;       /* pixels per world unit */
};

struct gos_cam {
	struct gos_view cur;      /* what is drawn this frame */
	struct gos_view target;   /* where cur is heading */
	double vw, vh;            /* viewport, pixels */
};

/* A camera at the origin, zoom 1, for a vw x vh viewport. */
void gos_cam_init(struct gos_cam *c, double vw, double vh);

/* Conversions for a view and viewport. */
void gos_view_to_screen(const struct gos_view *v, double vw, double vh,
                        double wx, double wy, double *sx, double *sy);
void gos_view_to_world(const struct gos_view *v, double vw, double vh,
                       double sx, double sy, double *wx, double *wy);

/* Zoom a view by `factor` keeping the world point under screen (sx, sy)
 * fixed; the zoom is clamped to [GOS_CAM_ZOOM_MIN, GOS_CAM_ZOOM_MAX]. */
void gos_view_zoom_at(struct gos_view *v, double vw, double vh,
                      double sx, double sy, double factor);

/* The view that shows the world box [x0, x1] x [y0, y1] whole, centered,
 * with `pad` pixels free on every side. An empty or degenerate box gets a
 * zoom of 1 around its center. */
struct gos_view gos_view_fit(double vw, double vh, double x0, double y0,
                             double x1, double y1, double pad);

/* Moves cur toward target: exponential approach with a time constant of
 * `tau` seconds (0: jump), zoom interpolated in log space, so the motion
 * looks the same at any frame rate. Returns true while still moving. */
bool gos_cam_step(struct gos_cam *c, double dt, double tau);

/* Pans the target (and cur, so dragging follows the pointer exactly) by a
 * screen-space delta in pixels. */
void gos_cam_pan_pixels(struct gos_cam *c, double dx, double dy);

/* Largest "nice" length (1, 2 or 5 times a power of ten) in world units whose
 * on-screen length at `zoom` is at most max_px. */
double gos_cam_nice_length(double zoom, double max_px);

#endif
