#include "gos_window.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GLFW_INCLUDE_VULKAN
#include <GLFW/glfw3.h>

#include "gos_camera.h"
#include "gos_log.h"
#include "gos_png.h"
#include "gos_render.h"
#include "gos_vk.h"
#include "gos_time.h"
#include "window_style.h"
#include "window_travel.h"

#define MAX_IMAGES 8
#define CAM_TAU 0.09           /* s: camera smoothing time constant */

struct input {
	double mx, my;             /* cursor, framebuffer pixels */
	bool dragging;
	double drag_x, drag_y;
	bool moved;
	double wheel;
	bool resized;
	bool keys[GLFW_KEY_LAST + 1];      /* pressed this frame */
	bool ctrl;                          /* ... one of them with Control held */
	bool shift;                         /* ... one of them with Shift held */
};

struct win {
	struct gos_window_opts o;
	const struct gos_window_deps *d;
	GLFWwindow *window;
	struct gos_vk *vk;
	struct gos_render *r;
	struct gos_offscreen *off;       /* headless target */

	VkSwapchainKHR swapchain;
	VkFormat format;
	VkExtent2D ext;
	uint32_t n_images;
	VkImage images[MAX_IMAGES];
	bool copy_into;              /* images take TRANSFER_DST: the renderer copies its
	                                background into them (gos_frame_info.image) */
	VkImageView views[MAX_IMAGES];
	VkFramebuffer fbs[MAX_IMAGES];
	VkSemaphore rendered[MAX_IMAGES];
	VkSemaphore acquired[4];

	struct input in;
	struct gos_cam cam;
	bool follow;
	int32_t active_stream;
	int64_t hover_slot;
	struct gos_map_view hover_view;
	double banner_until;
	char banner[640];
	int win_x, win_y, win_w, win_h;   /* windowed geometry, for F11 */
	struct window_travel tv;          /* time travel: which map is shown */
	struct window_style style;        /* color mode, filters, search */
};

static void sleep_s(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	nanosleep(&ts, NULL);
}

bool gos_window_display_available(char *why, size_t len)
{
	if (!getenv("DISPLAY") && !getenv("WAYLAND_DISPLAY")) {
		snprintf(why, len, "no display (DISPLAY and WAYLAND_DISPLAY are unset)");
		return false;
	}
	if (!glfwInit()) {
		snprintf(why, len, "GLFW cannot open the display %s",
		         getenv("DISPLAY") ? getenv("DISPLAY") : getenv("WAYLAND_DISPLAY"));
		return false;
	}
	if (!glfwVulkanSupported()) {
		snprintf(why, len, "GLFW finds no Vulkan loader for windows");
		glfwTerminate();
		return false;
	}
	return true;
}

/* ---- GLFW callbacks ---- */

static void scale_cursor(GLFWwindow *w, double *x, double *y)
{
	int ww, wh, fw, fh;
	glfwGetWindowSize(w, &ww, &wh);
	glfwGetFramebufferSize(w, &fw, &fh);
	if (ww > 0 && wh > 0) {   /* HiDPI: cursor in window units, drawing in pixels */
		*x *= (double)fw / ww;
		*y *= (double)fh / wh;
	}
}

static void on_cursor(GLFWwindow *w, double x, double y)
{
	struct win *s = glfwGetWindowUserPointer(w);
	scale_cursor(w, &x, &y);
	if (s->in.dragging) {
		gos_cam_pan_pixels(&s->cam, x - s->in.mx, y - s->in.my);
		s->follow = false;
	}
	s->in.mx = x;
	s->in.my = y;
	s->in.moved = true;
}

static void on_button(GLFWwindow *w, int button, int action, int mods)
{
	(void)mods;
	struct win *s = glfwGetWindowUserPointer(w);
	if (button == GLFW_MOUSE_BUTTON_LEFT)
		s->in.dragging = action == GLFW_PRESS;
}

static void on_scroll(GLFWwindow *w, double dx, double dy)
{
	(void)dx;
	struct win *s = glfwGetWindowUserPointer(w);
	s->in.wheel += dy;
}

static void on_key(GLFWwindow *w, int key, int scancode, int action, int mods)
{
	(void)scancode;
	struct win *s = glfwGetWindowUserPointer(w);
	if (key >= 0 && key <= GLFW_KEY_LAST && action == GLFW_PRESS) {
		s->in.keys[key] = true;
		/* the modifier as it was at the press: a press and its release
		 * can both arrive within one frame's poll */
		if (mods & GLFW_MOD_CONTROL)
			s->in.ctrl = true;
		if (mods & GLFW_MOD_SHIFT)
			s->in.shift = true;
	}
}

static void on_char(GLFWwindow *w, unsigned int codepoint)
{
	struct win *s = glfwGetWindowUserPointer(w);
	window_style_char(&s->style, codepoint);
}

static void on_resize(GLFWwindow *w, int fw, int fh)
{
	(void)fw;
	(void)fh;
	struct win *s = glfwGetWindowUserPointer(w);
	s->in.resized = true;
}

static VkSurfaceKHR make_surface(VkInstance instance, void *user)
{
	struct win *s = user;
	VkSurfaceKHR surface = VK_NULL_HANDLE;
	if (glfwCreateWindowSurface(instance, s->window, NULL, &surface) != VK_SUCCESS)
		return VK_NULL_HANDLE;
	return surface;
}

/* ---- swapchain ---- */

static void destroy_swapchain_images(struct win *s)
{
	VkDevice dev = s->vk->device;
	for (uint32_t i = 0; i < s->n_images; i++) {
		if (s->fbs[i])
			vkDestroyFramebuffer(dev, s->fbs[i], NULL);
		if (s->views[i])
			vkDestroyImageView(dev, s->views[i], NULL);
		if (s->rendered[i])
			vkDestroySemaphore(dev, s->rendered[i], NULL);
		s->fbs[i] = VK_NULL_HANDLE;
		s->views[i] = VK_NULL_HANDLE;
		s->rendered[i] = VK_NULL_HANDLE;
	}
	s->n_images = 0;
}

static VkFormat pick_format(struct win *s)
{
	uint32_t n = 0;
	VkSurfaceFormatKHR fmts[64];
	vkGetPhysicalDeviceSurfaceFormatsKHR(s->vk->physical_device, s->vk->surface, &n, NULL);
	if (n > 64)
		n = 64;
	vkGetPhysicalDeviceSurfaceFormatsKHR(s->vk->physical_device, s->vk->surface, &n, fmts);
	/* UNORM: the shaders write sRGB-encoded values themselves, exactly as
	 * in the offscreen pictures. */
	for (uint32_t i = 0; i < n; i++)
		if (fmts[i].format == VK_FORMAT_B8G8R8A8_UNORM)
			return fmts[i].format;
	for (uint32_t i = 0; i < n; i++)
		if (fmts[i].format == VK_FORMAT_R8G8B8A8_UNORM)
			return fmts[i].format;
	return n ? fmts[0].format : VK_FORMAT_B8G8R8A8_UNORM;
}

/* (Re)creates the swapchain at the framebuffer's size. Returns false on
 * failure; a zero-sized (minimized) window leaves ext 0x0 and succeeds. */
static bool create_swapchain(struct win *s)
{
	struct gos_vk *vk = s->vk;
	VkDevice dev = vk->device;
	int fw, fh;
	glfwGetFramebufferSize(s->window, &fw, &fh);
	vkDeviceWaitIdle(dev);
	destroy_swapchain_images(s);
	if (fw <= 0 || fh <= 0) {
		s->ext = (VkExtent2D){0, 0};
		return true;
	}
	VkSurfaceCapabilitiesKHR caps;
	VK(vkGetPhysicalDeviceSurfaceCapabilitiesKHR(vk->physical_device, vk->surface, &caps));
	VkExtent2D ext = caps.currentExtent;
	if (ext.width == UINT32_MAX) {
		ext.width = (uint32_t)fw;
		ext.height = (uint32_t)fh;
	}
	if (ext.width < caps.minImageExtent.width) ext.width = caps.minImageExtent.width;
	if (ext.height < caps.minImageExtent.height) ext.height = caps.minImageExtent.height;
	if (ext.width > caps.maxImageExtent.width) ext.width = caps.maxImageExtent.width;
	if (ext.height > caps.maxImageExtent.height) ext.height = caps.maxImageExtent.height;
	if (!ext.width || !ext.height) {
		s->ext = (VkExtent2D){0, 0};
		return true;
	}
	VkPresentModeKHR mode = VK_PRESENT_MODE_FIFO_KHR;   /* vsync, always there */
	if (s->o.no_vsync) {
		uint32_t n = 0;
		VkPresentModeKHR modes[16];
		vkGetPhysicalDeviceSurfacePresentModesKHR(vk->physical_device, vk->surface, &n, NULL);
		if (n > 16)
			n = 16;
		vkGetPhysicalDeviceSurfacePresentModesKHR(vk->physical_device, vk->surface, &n, modes);
		for (uint32_t i = 0; i < n; i++)
			if (modes[i] == VK_PRESENT_MODE_MAILBOX_KHR ||
			    (modes[i] == VK_PRESENT_MODE_IMMEDIATE_KHR && mode == VK_PRESENT_MODE_FIFO_KHR))
				mode = modes[i];
	}
	uint32_t want = caps.minImageCount + 1;
	if (caps.maxImageCount && want > caps.maxImageCount)
		want = caps.maxImageCount;
	VkSwapchainKHR old = s->swapchain;
	VkSwapchainCreateInfoKHR ci = {
		.sType = VK_STRUCTURE_TYPE_SWAPCHAIN_CREATE_INFO_KHR,
		.surface = vk->surface,
		.minImageCount = want,
		.imageFormat = s->format,
		.imageColorSpace = VK_COLOR_SPACE_SRGB_NONLINEAR_KHR,
		.imageExtent = ext,
		.imageArrayLayers = 1,
		.imageUsage = VK_IMAGE_USAGE_COLOR_ATTACHMENT_BIT | VK_IMAGE_USAGE_TRANSFER_SRC_BIT,
		.imageSharingMode = VK_SHARING_MODE_EXCLUSIVE,
		.preTransform = caps.currentTransform,
		.compositeAlpha = (caps.supportedCompositeAlpha & VK_COMPOSITE_ALPHA_OPAQUE_BIT_KHR)
		                  ? VK_COMPOSITE_ALPHA_OPAQUE_BIT_KHR
		                  : (VkCompositeAlphaFlagBitsKHR)(caps.supportedCompositeAlpha &
		                                                  -caps.supportedCompositeAlpha),
		.presentMode = mode,
		.clipped = VK_TRUE,
		.oldSwapchain = old,
	};
	if (!(caps.supportedUsageFlags & VK_IMAGE_USAGE_TRANSFER_SRC_BIT))
		ci.imageUsage = VK_IMAGE_USAGE_COLOR_ATTACHMENT_BIT;
	s->copy_into = caps.supportedUsageFlags & VK_IMAGE_USAGE_TRANSFER_DST_BIT;
	if (s->copy_into)
		ci.imageUsage |= VK_IMAGE_USAGE_TRANSFER_DST_BIT;
	VK(vkCreateSwapchainKHR(dev, &ci, NULL, &s->swapchain));
	if (old)
		vkDestroySwapchainKHR(dev, old, NULL);
	uint32_t n = 0;
	VK(vkGetSwapchainImagesKHR(dev, s->swapchain, &n, NULL));
	if (n > MAX_IMAGES)
		n = MAX_IMAGES;
	VK(vkGetSwapchainImagesKHR(dev, s->swapchain, &n, s->images));
	s->n_images = n;
	s->ext = ext;
	/* once per resize: never held back as a repeat */
	gos_log_always(GOS_LOG_INFO, "render", "swapchain %ux%u, %u images, %s", ext.width, ext.height,
	               n, mode == VK_PRESENT_MODE_FIFO_KHR ? "vsync" : "no vsync");
	for (uint32_t i = 0; i < n; i++) {
		VkImageViewCreateInfo vci = {
			.sType = VK_STRUCTURE_TYPE_IMAGE_VIEW_CREATE_INFO,
			.image = s->images[i],
			.viewType = VK_IMAGE_VIEW_TYPE_2D,
			.format = s->format,
			.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1},
		};
		VK(vkCreateImageView(dev, &vci, NULL, &s->views[i]));
		VkFramebufferCreateInfo fci = {
			.sType = VK_STRUCTURE_TYPE_FRAMEBUFFER_CREATE_INFO,
			.renderPass = gos_render_pass(s->r),
			.attachmentCount = 1,
			.pAttachments = &s->views[i],
			.width = ext.width,
			.height = ext.height,
			.layers = 1,
		};
		VK(vkCreateFramebuffer(dev, &fci, NULL, &s->fbs[i]));
		VkSemaphoreCreateInfo sci = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
		VK(vkCreateSemaphore(dev, &sci, NULL, &s->rendered[i]));
	}
	return true;
error:
	return false;
}

/* ---- input ---- */

static void set_banner(struct win *s, double t, const char *msg)
{
	snprintf(s->banner, sizeof(s->banner), "%s", msg);
	s->banner_until = t + 3;
}

/* Renders fi into a fresh w x h offscreen image and writes it to path.
 * False with one sentence in err. */
static bool capture(struct win *s, const char *path, uint32_t w, uint32_t h,
                    const struct gos_frame_info *fi, char *err, size_t err_len)
{
	struct gos_offscreen *off = gos_offscreen_create(s->r, w, h);
	uint8_t *rgba = malloc((size_t)w * h * 4);
	struct gos_frame_info f = *fi;
	f.image = off ? gos_offscreen_image(off) : VK_NULL_HANDLE;
	f.banner = NULL;
	f.hover = NULL;
	bool ok = false;
	if (!off || !rgba)
		snprintf(err, err_len, "cannot create a %ux%u offscreen image", w, h);
	else if (!gos_render_frame(s->r, gos_offscreen_framebuffer(off), gos_offscreen_extent(off),
	                           &f, VK_NULL_HANDLE, VK_NULL_HANDLE) ||
	         !gos_offscreen_read(s->r, off, rgba))
		snprintf(err, err_len, "rendering the picture failed (see the compositor's log)");
	else
		ok = gos_png_write(path, rgba, w, h, err, err_len);
	free(rgba);
	gos_offscreen_destroy(s->r, off);
	return ok;
}

static void screenshot(struct win *s, double t, double vw, double vh, const struct gos_frame_info *fi)
{
	char path[512], err[256], msg[600];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	char stamp[32];
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	snprintf(path, sizeof(path), "%s/gos-%s.png", s->o.shot_dir ? s->o.shot_dir : ".", stamp);
	bool ok = capture(s, path, (uint32_t)vw, (uint32_t)vh, fi, err, sizeof(err));
	if (ok)
		snprintf(msg, sizeof(msg), "screenshot saved to %s", path);
	else
		snprintf(msg, sizeof(msg), "screenshot failed (%s)", path);
	/* a key press: a person's pace, never held back */
	gos_log_always(ok ? GOS_LOG_INFO : GOS_LOG_WARN, "render", "%s", msg);
	set_banner(s, t, msg);
}

/* Requested pictures: the map as of the request (it was applied before the
 * request reached the owner), drawn like gos-shot draws a recording: every
 * token faded in, the stream list and scale bar, no hover or banner. */
static void remote_shots(struct win *s, struct gos_map *map, struct gos_map *shown, double vw,
                         double vh, const struct gos_frame_info *fi)
{
	const struct gos_window_deps *d = s->d;
	if (!d->shot_take || !d->shot_done)
		return;
	struct gos_window_shot req;
	bool synced = false;
	while (d->shot_take(d->ctx, &req)) {
		if (!synced) {
			/* pictures show the live map, also while the window shows the past */
			if (shown != map)
				gos_render_resync(s->r);
			while (gos_render_sync(s->r, map) > 0 || gos_render_behind(s->r))
				;
			synced = true;
		}
		struct gos_frame_info f = *fi;
		f.no_fade = true;
		f.hud = GOS_HUD_STREAMS | GOS_HUD_SCALE;
		f.timeline = NULL;
		f.active_stream = -1;
		if (req.fit)
			f.view = gos_render_fit(s->r, vw, vh);
		char err[300] = "";
		struct gos_window_shot_result res = {.width = (uint32_t)vw, .height = (uint32_t)vh};
		res.ok = capture(s, req.path, res.width, res.height, &f, err, sizeof(err));
		struct gos_render_state rs;
		gos_render_state(s->r, &rs);
		res.tokens = rs.live_tokens;
		res.reason = res.ok ? NULL : err;
		if (res.ok)
			gos_log_info("render", "requested screenshot %s: written", req.path);
		else
			gos_log_warn("render", "requested screenshot %s: %s", req.path, err);
		d->shot_done(d->ctx, &req, &res);
	}
	if (synced && shown != map)
		gos_render_resync(s->r);   /* back to the past map next frame */
}

static void toggle_fullscreen(struct win *s)
{
	if (glfwGetWindowMonitor(s->window)) {
		glfwSetWindowMonitor(s->window, NULL, s->win_x, s->win_y, s->win_w, s->win_h, 0);
		return;
	}
	int n = 0;
	GLFWmonitor **mons = glfwGetMonitors(&n);
	if (!n)
		return;
	GLFWmonitor *m = mons[s->o.monitor < n ? s->o.monitor : 0];
	const GLFWvidmode *mode = glfwGetVideoMode(m);
	glfwGetWindowPos(s->window, &s->win_x, &s->win_y);
	glfwGetWindowSize(s->window, &s->win_w, &s->win_h);
	glfwSetWindowMonitor(s->window, m, 0, 0, mode->width, mode->height, mode->refreshRate);
}

static bool handle_input(struct win *s, double t, double dt, double vw, double vh)
{
	struct input *in = &s->in;
	if (in->keys[GLFW_KEY_ESCAPE] || in->keys[GLFW_KEY_Q])
		return false;
	if (in->wheel != 0) {
		gos_view_zoom_at(&s->cam.target, vw, vh, in->mx, in->my, pow(1.2, in->wheel));
		in->wheel = 0;
		s->follow = false;
	}
	/* Held keys move at a rate per second, not per frame. */
	if (s->window) {
		double pan = 600 * dt;
		double dx = 0, dy = 0;
		if (glfwGetKey(s->window, GLFW_KEY_LEFT) == GLFW_PRESS) dx += pan;
		if (glfwGetKey(s->window, GLFW_KEY_RIGHT) == GLFW_PRESS) dx -= pan;
		if (glfwGetKey(s->window, GLFW_KEY_UP) == GLFW_PRESS) dy += pan;
		if (glfwGetKey(s->window, GLFW_KEY_DOWN) == GLFW_PRESS) dy -= pan;
		if (dx || dy) {
			s->cam.target.cx -= dx / s->cam.target.zoom;
			s->cam.target.cy -= dy / s->cam.target.zoom;
			s->follow = false;
		}
		double zf = 0;
		if (glfwGetKey(s->window, GLFW_KEY_EQUAL) == GLFW_PRESS ||
		    glfwGetKey(s->window, GLFW_KEY_KP_ADD) == GLFW_PRESS)
			zf += 1;
		if (glfwGetKey(s->window, GLFW_KEY_MINUS) == GLFW_PRESS ||
		    glfwGetKey(s->window, GLFW_KEY_KP_SUBTRACT) == GLFW_PRESS)
			zf -= 1;
		if (zf)
			gos_view_zoom_at(&s->cam.target, vw, vh, vw / 2, vh / 2, pow(3.0, zf * dt));
	}
	if (in->keys[GLFW_KEY_HOME]) {
		s->cam.target = gos_render_fit(s->r, vw, vh);
		s->follow = false;
	}
	struct gos_render_state rs;
	gos_render_state(s->r, &rs);
	if (in->keys[GLFW_KEY_TAB] && rs.n_streams) {
		s->active_stream = (s->active_stream + 1) % (int32_t)rs.n_streams;
		const struct gos_stream *st = gos_render_stream(s->r, (size_t)s->active_stream);
		char msg[128];
		snprintf(msg, sizeof(msg), "active stream: %s", st && st->name[0] ? st->name : "default");
		set_banner(s, t, msg);
	}
	if (in->keys[GLFW_KEY_F]) {
		s->follow = !s->follow;
		set_banner(s, t, s->follow ? "following the newest token" : "follow off");
	}
	if (s->follow) {
		int32_t a = s->active_stream >= 0 ? s->active_stream : 0;
		const struct gos_stream *st = gos_render_stream(s->r, (size_t)a);
		float x, y, w;
		if (st && st->newest_slot >= 0 && gos_render_slot(s->r, (uint32_t)st->newest_slot, &x, &y, &w)) {
			s->cam.target.cx = x;
			s->cam.target.cy = y;
			if (s->cam.target.zoom < 1)
				s->cam.target.zoom = 1;
		}
	}
	if (in->keys[GLFW_KEY_F11] && s->window)
		toggle_fullscreen(s);
	return true;
}

/* Color mode, filters and search: their keys first (while the search box
 * is open it takes every key), then what changed goes to the renderer. */
static bool style_input(struct win *s, const struct gos_window_deps *deps, struct gos_map *shown,
                        double t, size_t n_streams)
{
	char msg[400];
	double jx, jy;
	if (window_style_keys(&s->style, s->in.keys, s->in.ctrl, s->in.shift, s->active_stream, n_streams,
	                      deps, msg, sizeof(msg), &jx, &jy)) {
		s->cam.target.cx = jx;
		s->cam.target.cy = jy;
		if (s->cam.target.zoom < 1)
			s->cam.target.zoom = 1;
		s->follow = false;
	}
	if (msg[0]) {
		gos_log_always(GOS_LOG_INFO, "render", "%s", msg);
		set_banner(s, t, msg);
	}
	if (s->style.dirty) {
		if (!gos_render_set_style(s->r, &s->style.st))
			return false;
		s->style.dirty = false;
	}
	if (s->style.matches_dirty) {
		if (!gos_render_set_matches(s->r, shown, s->style.res.slots, s->style.res.n_slots))
			return false;
		s->style.matches_dirty = false;
	}
	return true;
}

/* ---- the loop ---- */

static void finish(struct win *s)
{
	if (s->vk) {
		vkDeviceWaitIdle(s->vk->device);
		destroy_swapchain_images(s);
		for (int i = 0; i < 4; i++)
			if (s->acquired[i])
				vkDestroySemaphore(s->vk->device, s->acquired[i], NULL);
		if (s->swapchain)
			vkDestroySwapchainKHR(s->vk->device, s->swapchain, NULL);
		if (s->r)
			gos_offscreen_destroy(s->r, s->off);
	}
	window_travel_finish(&s->tv);
	window_style_finish(&s->style);
	gos_render_destroy(s->r);
	gos_map_view_finish(&s->hover_view);
	gos_vk_destroy(s->vk);
	if (s->window)
		glfwDestroyWindow(s->window);
	if (!s->o.headless)
		glfwTerminate();
}

bool gos_window_run(const struct gos_window_opts *opts, const struct gos_window_deps *deps,
                    struct gos_window_result *res)
{
	struct win s_ = {0}, *s = &s_;
	s->o = *opts;
	s->d = deps;
	window_travel_init(&s->tv, deps->travel);
	window_style_init(&s->style, opts->color_mode);
	s->active_stream = -1;
	s->hover_slot = -1;
	/* As the web viewer: start legible (zoom 1 or more) on the newest token,
	 * following it until the user moves the camera (F, Home, a drag, ...). */
	s->follow = true;
	*res = (struct gos_window_result){0};
	uint32_t w = s->o.width ? s->o.width : 1280, h = s->o.height ? s->o.height : 720;
	double max_fps = s->o.max_fps > 0 ? s->o.max_fps : (s->o.headless ? 10 : 0);
	char err[256];
	bool ok = false;

	if (!s->o.headless) {
		/* glfwInit() was done by gos_window_display_available(). */
		glfwWindowHint(GLFW_CLIENT_API, GLFW_NO_API);
		glfwWindowHint(GLFW_SCALE_TO_MONITOR, GLFW_TRUE);
		GLFWmonitor *mon = NULL;
		if (s->o.fullscreen) {
			int n = 0;
			GLFWmonitor **mons = glfwGetMonitors(&n);
			if (s->o.monitor >= n) {
				gos_log_warn("render", "--monitor %d: there %s only %d monitor%s; using the primary",
				             s->o.monitor, n == 1 ? "is" : "are", n, n == 1 ? "" : "s");
				s->o.monitor = 0;
			}
			if (n)
				mon = mons[s->o.monitor];
		}
		if (mon) {
			const GLFWvidmode *m = glfwGetVideoMode(mon);
			w = (uint32_t)m->width;
			h = (uint32_t)m->height;
		}
		s->win_w = (int)(s->o.width ? s->o.width : 1280);
		s->win_h = (int)(s->o.height ? s->o.height : 720);
		s->win_x = s->win_y = 64;
		s->window = glfwCreateWindow((int)w, (int)h, "gos", mon, NULL);
		if (!s->window) {
			gos_log_error("render", "cannot open a window");
			goto out;
		}
		glfwSetWindowUserPointer(s->window, s);
		glfwSetCursorPosCallback(s->window, on_cursor);
		glfwSetMouseButtonCallback(s->window, on_button);
		glfwSetScrollCallback(s->window, on_scroll);
		glfwSetKeyCallback(s->window, on_key);
		glfwSetCharCallback(s->window, on_char);
		glfwSetFramebufferSizeCallback(s->window, on_resize);
		uint32_t n_exts = 0;
		const char **exts = glfwGetRequiredInstanceExtensions(&n_exts);
		s->vk = gos_vk_create(&(struct gos_vk_opts){
			.instance_exts = exts, .n_instance_exts = n_exts, .want_graphics = true,
			.create_surface = make_surface, .surface_user = s, .app_name = "gos-compositor",
			.gpu = s->o.gpu});
		if (!s->vk) {
			gos_log_error("render", "no Vulkan device can draw to this window (see above)");
			goto out;
		}
		s->format = pick_format(s);
	} else {
		s->vk = gos_vk_create(&(struct gos_vk_opts){.want_graphics = true,
		                      .app_name = "gos-compositor", .gpu = s->o.gpu});
		if (!s->vk) {
			gos_log_error("render", "no usable Vulkan device for headless rendering (see above)");
			goto out;
		}
		s->format = VK_FORMAT_B8G8R8A8_UNORM;
	}
	s->r = gos_render_create(s->vk, &(struct gos_render_opts){
		.format = s->format, .palette = s->o.palette, .cpu_compute = s->o.cpu_compute,
		.final_layout = s->window ? VK_IMAGE_LAYOUT_PRESENT_SRC_KHR : 0}, err, sizeof(err));
	if (!s->r) {
		gos_log_error("render", "%s", err);
		goto out;
	}
	for (int i = 0; i < 4; i++) {
		VkSemaphoreCreateInfo sci = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
		if (vkCreateSemaphore(s->vk->device, &sci, NULL, &s->acquired[i]) != VK_SUCCESS)
			goto out;
	}
	if (s->window) {
		if (!create_swapchain(s))
			goto out;
	} else {
		s->off = gos_offscreen_create(s->r, w, h);
		if (!s->off)
			goto out;
		s->ext = (VkExtent2D){w, h};
	}
	gos_cam_init(&s->cam, s->ext.width, s->ext.height);

	double t0 = gos_now_s(), last = t0, fps = 0, fps_t = t0;
	uint64_t fps_frames = 0;
	bool fitted = false;
	ok = true;
	for (;;) {
		memset(s->in.keys, 0, sizeof(s->in.keys));
		s->in.ctrl = false;
		s->in.shift = false;
		if (s->window) {
			glfwPollEvents();
			if (glfwWindowShouldClose(s->window))
				break;
		}
		if (deps->tick && !deps->tick(deps->ctx))
			break;
		double t = gos_now_s(), dt = t - last;
		last = t;

		/* Test hook: resize twice and toggle fullscreen on and off. */
		if (s->o.exercise && s->window && s->o.frames) {
			uint64_t f = res->frames, n = s->o.frames;
			if (f == n / 5)
				glfwSetWindowSize(s->window, 800, 500);
			else if (f == 2 * n / 5)
				glfwSetWindowSize(s->window, 1100, 650);
			else if (f == 3 * n / 5 || f == 4 * n / 5)
				s->in.keys[GLFW_KEY_F11] = true;
		}

		char tmsg[400];
		bool resync = false;
		struct gos_map *shown = window_travel_map(&s->tv, deps->map, dt, t, &resync, tmsg,
		                                          sizeof(tmsg));
		if (resync)
			gos_render_resync(s->r);
		if (tmsg[0])
			set_banner(s, t, tmsg);
		gos_render_sync(s->r, shown);
		if (s->window && (s->in.resized || !s->ext.width)) {
			s->in.resized = false;
			if (!create_swapchain(s)) {
				ok = false;
				break;
			}
		}
		if (!s->ext.width) {   /* minimized: nothing to draw */
			if (s->window)
				glfwWaitEventsTimeout(0.1);
			continue;
		}
		double vw = s->ext.width, vh = s->ext.height;
		s->cam.vw = vw;
		s->cam.vh = vh;
		struct gos_render_state rs;
		gos_render_state(s->r, &rs);
		if (!fitted && rs.has_bounds) {
			/* The first tokens: look at them. */
			s->cam.cur = s->cam.target = gos_render_fit(s->r, vw, vh);
			if (s->cam.cur.zoom > 1.5)
				s->cam.cur.zoom = s->cam.target.zoom = 1.5;
			fitted = true;
		}
		if (!style_input(s, deps, shown, t, rs.n_streams))
			break;
		if (!handle_input(s, t, dt, vw, vh))
			break;
		gos_cam_step(&s->cam, dt, CAM_TAU);

		/* Hover: pick when the pointer moved, fetch details of that slot. */
		const struct gos_token *hover = NULL;
		const char *hover_stream = NULL;
		if (s->window && s->in.moved && !s->in.dragging) {
			double wx, wy;
			gos_view_to_world(&s->cam.cur, vw, vh, s->in.mx, s->in.my, &wx, &wy);
			s->hover_slot = gos_render_pick(s->r, wx, wy);
			s->in.moved = false;
		}
		if (s->hover_slot >= 0) {
			gos_map_read_all(shown, (uint32_t)s->hover_slot, 1, &s->hover_view);
			if (s->hover_view.n_tokens == 1 && s->hover_view.tokens[0].slot == (uint32_t)s->hover_slot) {
				hover = &s->hover_view.tokens[0];
				const struct gos_stream *st = gos_render_stream(s->r, hover->stream);
				hover_stream = st ? st->name : NULL;
			}
		}

		fps_frames++;
		if (t - fps_t >= 0.5) {
			fps = (double)fps_frames / (t - fps_t);
			fps_frames = 0;
			fps_t = t;
		}
		struct gos_frame_info fi = {
			.view = s->cam.cur,
			.now = gos_render_now(s->r),
			.hud = GOS_HUD_ALL,
			.fps = fps,
			.events_per_s = deps->events_per_s ? deps->events_per_s(deps->ctx) : 0,
			.viewers = deps->viewers ? deps->viewers(deps->ctx) : -1,
			.active_stream = s->active_stream,
			.hover = hover,
			.hover_stream = hover_stream,
			.mouse_x = s->in.mx,
			.mouse_y = s->in.my,
			.banner = t < s->banner_until ? s->banner : NULL,
		};
		char sline[WINDOW_QUERY_MAX + 96];
		if (!fi.banner)
			fi.banner = window_style_line(&s->style, sline, sizeof(sline));
		bool ctrl = s->in.ctrl;
		window_travel_keys(&s->tv, s->in.keys, ctrl, t, s->o.shot_dir, tmsg, sizeof(tmsg));
		if (tmsg[0])
			set_banner(s, t, tmsg);
		fi.timeline = window_travel_hud(&s->tv);
		if (s->in.keys[GLFW_KEY_S] && !ctrl)
			screenshot(s, t, vw, vh, &fi);
		if (s->in.keys[GLFW_KEY_E] && !ctrl) {
			char emsg[600] = "export: not available here";
			if (deps->export_csv)
				deps->export_csv(deps->ctx, s->o.shot_dir ? s->o.shot_dir : ".", emsg, sizeof(emsg));
			gos_log_always(GOS_LOG_INFO, "render", "%s", emsg);
			set_banner(s, t, emsg);
		}
		remote_shots(s, deps->map, shown, vw, vh, &fi);

		if (s->window) {
			if (!gos_render_wait_slot(s->r)) {
				ok = false;
				break;
			}
			VkSemaphore acq = s->acquired[gos_render_slot_index(s->r)];
			uint32_t idx;
			VkResult ar = vkAcquireNextImageKHR(s->vk->device, s->swapchain, UINT64_MAX, acq,
			                                    VK_NULL_HANDLE, &idx);
			if (ar == VK_ERROR_OUT_OF_DATE_KHR) {
				s->in.resized = true;
				continue;
			}
			if (ar != VK_SUCCESS && ar != VK_SUBOPTIMAL_KHR) {
				gos_vk_log_result("vkAcquireNextImageKHR", ar, __FILE__, __LINE__);
				ok = false;
				break;
			}
			fi.image = s->copy_into ? s->images[idx] : VK_NULL_HANDLE;
			if (!gos_render_frame(s->r, s->fbs[idx], s->ext, &fi, acq, s->rendered[idx])) {
				ok = false;
				break;
			}
			VkPresentInfoKHR pi = {
				.sType = VK_STRUCTURE_TYPE_PRESENT_INFO_KHR,
				.waitSemaphoreCount = 1,
				.pWaitSemaphores = &s->rendered[idx],
				.swapchainCount = 1,
				.pSwapchains = &s->swapchain,
				.pImageIndices = &idx,
			};
			VkResult pr = vkQueuePresentKHR(s->vk->queue, &pi);
			if (pr == VK_ERROR_OUT_OF_DATE_KHR || pr == VK_SUBOPTIMAL_KHR || ar == VK_SUBOPTIMAL_KHR)
				s->in.resized = true;
			else if (pr != VK_SUCCESS) {
				gos_vk_log_result("vkQueuePresentKHR", pr, __FILE__, __LINE__);
				ok = false;
				break;
			}
		} else {
			fi.image = gos_offscreen_image(s->off);
			if (!gos_render_frame(s->r, gos_offscreen_framebuffer(s->off), s->ext, &fi,
			                      VK_NULL_HANDLE, VK_NULL_HANDLE)) {
				ok = false;
				break;
			}
		}
		res->frames++;
		if (s->o.frames && res->frames >= s->o.frames)
			break;
		if (max_fps > 0)
			sleep_s(1.0 / max_fps - (gos_now_s() - t));
	}
	res->seconds = gos_now_s() - t0;
out:
	if (s->vk) {
		if (s->r)
			gos_render_wait(s->r);
		res->validation_errors = gos_vk_validation_errors(s->vk);
	}
	finish(s);
	return ok;
}
