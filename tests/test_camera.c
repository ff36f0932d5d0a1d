/* Camera math: screen<->world round trip, zoom about a point, fit to bounds,
 * framerate-independent smoothing, the scale bar's nice lengths. */
#include <math.h>

#include "gos_camera.h"
#include "gos_test.h"

static void test_round_trip(void)
{
	const double zooms[] = {1e-4, 0.37, 1, 5.5, 64};
	const double pts[][2] = {{0, 0}, {123.5, -77.25}, {-1e6, 3e5}, {9999.125, 0.5}};
	for (size_t zi = 0; zi < sizeof(zooms) / sizeof(zooms[0]); zi++) {
		struct gos_view v = {.cx = 1000.5, .cy = -250.25, .zoom = zooms[zi]};
		for (size_t i = 0; i < sizeof(pts) / sizeof(pts[0]); i++) {
			double sx, sy, wx, wy;
			gos_view_to_screen(&v, 1920, 1080, pts[i][0], pts[i][1], &sx, &sy);
			gos_view_to_world(&v, 1920, 1080, sx, sy, &wx, &wy);
			double tol = 1e-9 * (1 + fabs(pts[i][0]) + fabs(pts[i][1]));
			CHECK(fabs(wx - pts[i][0]) <= tol && fabs(wy - pts[i][1]) <= tol,
			      "zoom %g point (%g,%g) came back as (%.12g,%.12g)", zooms[zi],
			      pts[i][0], pts[i][1], wx, wy);
		}
	}
	/* The center of the viewport shows the view's center. */
	struct gos_view v = {.cx = 42, .cy = -7, .zoom = 3};
	double sx, sy;
	gos_view_to_screen(&v, 800, 600, 42, -7, &sx, &sy);
	CHECK(sx == 400 && sy == 300, "center maps to (%g,%g), not (400,300)", sx, sy);
	/* y grows down the screen, like the compute shader's convention. */
	gos_view_to_screen(&v, 800, 600, 42, -6, &sx, &sy);
	CHECK(sy == 303, "one world unit down is 3 px down at zoom 3, got %g", sy);
}

static void test_zoom_at(void)
{
	struct gos_view v = {.cx = 10, .cy = 20, .zoom = 1};
	double wx0, wy0;
	gos_view_to_world(&v, 1000, 500, 700, 100, &wx0, &wy0);
	gos_view_zoom_at(&v, 1000, 500, 700, 100, 2.5);
	CHECK(fabs(v.zoom - 2.5) < 1e-12, "zoom %g, not 2.5", v.zoom);
	double wx1, wy1;
	gos_view_to_world(&v, 1000, 500, 700, 100, &wx1, &wy1);
	CHECK(fabs(wx1 - wx0) < 1e-9 && fabs(wy1 - wy0) < 1e-9,
	      "point under the cursor moved from (%g,%g) to (%g,%g)", wx0, wy0, wx1, wy1);
	/* Zooming out and back in returns to the same view. */
	gos_view_zoom_at(&v, 1000, 500, 700, 100, 1 / 2.5);
	CHECK(fabs(v.cx - 10) < 1e-9 && fabs(v.cy - 20) < 1e-9 && fabs(v.zoom - 1) < 1e-12,
	      "zoom in+out gave center (%g,%g) zoom %g", v.cx, v.cy, v.zoom);
	/* Clamped at both ends. */
	gos_view_zoom_at(&v, 1000, 500, 0, 0, 1e9);
	CHECK(v.zoom == GOS_CAM_ZOOM_MAX, "zoom not clamped to the max: %g", v.zoom);
	gos_view_zoom_at(&v, 1000, 500, 0, 0, 1e-20);
	CHECK(v.zoom == GOS_CAM_ZOOM_MIN, "zoom not clamped to the min: %g", v.zoom);
}

static void test_fit(void)
{
	struct gos_view v = gos_view_fit(1000, 500, -100, -50, 300, 50, 10);
	CHECK(v.cx == 100 && v.cy == 0, "fit center (%g,%g), not (100,0)", v.cx, v.cy);
	/* width 400 into 980 px -> 2.45; height 100 into 480 -> 4.8: width limits */
	CHECK(fabs(v.zoom - 2.45) < 1e-12, "fit zoom %g, not 2.45", v.zoom);
	double sx0, sy0, sx1, sy1;
	gos_view_to_screen(&v, 1000, 500, -100, -50, &sx0, &sy0);
	gos_view_to_screen(&v, 1000, 500, 300, 50, &sx1, &sy1);
	CHECK(sx0 >= 10 - 1e-9 && sx1 <= 990 + 1e-9 && sy0 >= 10 && sy1 <= 490,
	      "fitted box at (%g,%g)-(%g,%g) leaves the padded viewport", sx0, sy0, sx1, sy1);
	/* A tall box is limited by height. */
	v = gos_view_fit(1000, 500, 0, 0, 10, 1000, 0);
	CHECK(fabs(v.zoom - 0.5) < 1e-12, "tall fit zoom %g, not 0.5", v.zoom);
	/* A single point: zoom 1 around it. */
	v = gos_view_fit(1000, 500, 5, 6, 5, 6, 24);
	CHECK(v.cx == 5 && v.cy == 6 && v.zoom == 1, "point fit gave (%g,%g) zoom %g", v.cx, v.cy, v.zoom);
}

static void test_smoothing(void)
{
	/* The same 0.5 s of motion at 30 and at 240 frames per second ends at
	 * (nearly) the same place: framerate independent. */
	struct gos_cam a, b;
	gos_cam_init(&a, 800, 600);
	gos_cam_init(&b, 800, 600);
	a.target = b.target = (struct gos_view){.cx = 1000, .cy = -500, .zoom = 4};
	for (int i = 0; i < 15; i++)
		gos_cam_step(&a, 1.0 / 30, 0.12);
	for (int i = 0; i < 120; i++)
		gos_cam_step(&b, 1.0 / 240, 0.12);
	CHECK(fabs(a.cur.cx - b.cur.cx) < 1e-6 * 1000 && fabs(a.cur.zoom - b.cur.zoom) < 1e-6,
	      "30 fps reached (%g, zoom %g), 240 fps (%g, zoom %g)", a.cur.cx, a.cur.zoom,
	      b.cur.cx, b.cur.zoom);
	/* It arrives, and then reports it is no longer moving. */
	bool moving = true;
	for (int i = 0; i < 600 && moving; i++)
		moving = gos_cam_step(&a, 1.0 / 60, 0.12);
	CHECK(!moving && a.cur.cx == 1000 && a.cur.zoom == 4, "camera did not settle: (%g, zoom %g)",
	      a.cur.cx, a.cur.zoom);
	/* Panning by pixels moves the view by pixels / zoom. */
	gos_cam_pan_pixels(&a, 40, -20);
	CHECK(a.cur.cx == 990 && a.cur.cy == -495, "pan gave (%g,%g), not (990,-495)", a.cur.cx, a.cur.cy);
}

static void test_nice_length(void)
{
	CHECK(gos_cam_nice_length(1, 160) == 100, "zoom 1: %g", gos_cam_nice_length(1, 160));
	CHECK(gos_cam_nice_length(0.5, 160) == 200, "zoom .5: %g", gos_cam_nice_length(0.5, 160));
	CHECK(gos_cam_nice_length(0.1, 160) == 1000, "zoom .1: %g", gos_cam_nice_length(0.1, 160));
	CHECK(gos_cam_nice_length(0.25, 160) == 500, "zoom .25: %g", gos_cam_nice_length(0.25, 160));
	CHECK(fabs(gos_cam_nice_length(40, 160) - 2) < 1e-12, "zoom 40: %g", gos_cam_nice_length(40, 160));
}

int main(void)
{
	test_round_trip();
	test_zoom_at();
	test_fit();
	test_smoothing();
	test_nice_length();
	return gos_test_report("test_camera");
}
