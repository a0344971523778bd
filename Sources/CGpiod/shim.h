// CGpiod: libgpiod and the kernel's GPIO character-device UAPI for Swift. The build machines have
// libgpiod 1.6 (v1 API), the box images libgpiod 2.x (v2 API); this header tells Swift which one it was
// compiled against (cb_gpiod_api_version) so the Devices layer can choose its backend at build time.
#ifndef CLASSBOX_CGPIOD_SHIM_H
#define CLASSBOX_CGPIOD_SHIM_H
#include <stddef.h>
#include <linux/gpio.h>
#include <gpiod.h>

// v1 defines GPIOD_LINE_BULK_MAX_LINES; v2 removed line bulks altogether.
#if defined(GPIOD_LINE_BULK_MAX_LINES)
#define CB_GPIOD_API 1
#else
#define CB_GPIOD_API 2
#endif
static inline int cb_gpiod_api_version(void) { return CB_GPIOD_API; }

// One uniform set of cb_gpio_* functions over both libgpiod generations, so Swift (which cannot see C
// macros in #if) calls the same names whichever library the firmware is built against. Conventions:
// pointers are NULL and ints -1 on failure with errno set; a "request" is v1's struct gpiod_line * or
// v2's struct gpiod_line_request *, and functions taking one also take the line's offset (v2 needs it).
#include <errno.h>
#include <stdint.h>
#include <string.h>

/// The libgpiod version string at run time (renamed gpiod_api_version() in v2).
static inline const char *cb_gpiod_version_string(void) {
#if CB_GPIOD_API == 1
    return gpiod_version_string();
#else
    return gpiod_api_version();
#endif
}

/// A line as the chip reports it.
struct cb_gpio_line_info {
    char name[32];
    char consumer[32];
    int used;
    int output;
    int active_low;
    unsigned long debounce_us;
};

/// One edge of a requested input line: rising means the line became active (active-low applied).
struct cb_gpio_edge {
    int rising;
    uint64_t timestamp_ns;
};

static inline void cb_gpio_copy(char *dst, size_t len, const char *src) {
    if (len == 0) return;
    if (!src) src = "";
    strncpy(dst, src, len - 1);
    dst[len - 1] = 0;
}

static inline struct gpiod_chip *cb_gpio_chip_open(const char *path) { return gpiod_chip_open(path); }
static inline void cb_gpio_chip_close(struct gpiod_chip *chip) { gpiod_chip_close(chip); }

/// The chip's label and kernel name (`gpiochipN`) and its number of lines; 0 or -1.
static inline int cb_gpio_chip_info(struct gpiod_chip *chip, char *label, size_t label_len, char *name, size_t name_len,
                                    unsigned int *num_lines) {
#if CB_GPIOD_API == 1
    cb_gpio_copy(label, label_len, gpiod_chip_label(chip));
    cb_gpio_copy(name, name_len, gpiod_chip_name(chip));
    *num_lines = gpiod_chip_num_lines(chip);
    return 0;
#else
    struct gpiod_chip_info *info = gpiod_chip_get_info(chip);
    if (!info) return -1;
    cb_gpio_copy(label, label_len, gpiod_chip_info_get_label(info));
    cb_gpio_copy(name, name_len, gpiod_chip_info_get_name(info));
    *num_lines = (unsigned int)gpiod_chip_info_get_num_lines(info);
    gpiod_chip_info_free(info);
    return 0;
#endif
}

/// What the kernel says about one line (name, holder, direction); 0 or -1.
static inline int cb_gpio_get_line_info(struct gpiod_chip *chip, unsigned int offset, struct cb_gpio_line_info *out) {
    memset(out, 0, sizeof(*out));
#if CB_GPIOD_API == 1
    struct gpiod_line *line = gpiod_chip_get_line(chip, offset);
    if (!line) return -1;
    cb_gpio_copy(out->name, sizeof(out->name), gpiod_line_name(line));
    cb_gpio_copy(out->consumer, sizeof(out->consumer), gpiod_line_consumer(line));
    out->used = gpiod_line_is_used(line);
    out->output = gpiod_line_direction(line) == GPIOD_LINE_DIRECTION_OUTPUT;
    out->active_low = gpiod_line_active_state(line) == GPIOD_LINE_ACTIVE_STATE_LOW;
    return 0;
#else
    struct gpiod_line_info *info = gpiod_chip_get_line_info(chip, offset);
    if (!info) return -1;
    cb_gpio_copy(out->name, sizeof(out->name), gpiod_line_info_get_name(info));
    cb_gpio_copy(out->consumer, sizeof(out->consumer), gpiod_line_info_get_consumer(info));
    out->used = gpiod_line_info_is_used(info);
    out->output = gpiod_line_info_get_direction(info) == GPIOD_LINE_DIRECTION_OUTPUT;
    out->active_low = gpiod_line_info_is_active_low(info);
    out->debounce_us = gpiod_line_info_get_debounce_period_us(info);
    gpiod_line_info_free(info);
    return 0;
#endif
}

#if CB_GPIOD_API == 2
/// v2: one line with `settings`, released on every path; NULL with errno on failure.
static inline struct gpiod_line_request *cb_gpio_request_v2(struct gpiod_chip *chip, unsigned int offset,
                                                            const char *consumer, struct gpiod_line_settings *settings) {
    struct gpiod_line_request *request = NULL;
    struct gpiod_line_config *line_config = gpiod_line_config_new();
    struct gpiod_request_config *request_config = gpiod_request_config_new();
    if (line_config && request_config && gpiod_line_config_add_line_settings(line_config, &offset, 1, settings) == 0) {
        gpiod_request_config_set_consumer(request_config, consumer);
        request = gpiod_chip_request_lines(chip, request_config, line_config);
    }
    int saved = errno;
    if (request_config) gpiod_request_config_free(request_config);
    if (line_config) gpiod_line_config_free(line_config);
    errno = saved;
    return request;
}
#endif

/// Requests `offset` as an input reporting both edges, with a pull toward the released level (pull-up
/// for an active-low button). `*kernel_debounce` says whether the kernel debounces (v2 only).
static inline void *cb_gpio_request_events(struct gpiod_chip *chip, unsigned int offset, const char *consumer, int active_low,
                                           unsigned long debounce_us, int *kernel_debounce) {
#if CB_GPIOD_API == 1
    (void)debounce_us;
    *kernel_debounce = 0;
    struct gpiod_line *line = gpiod_chip_get_line(chip, offset);
    if (!line) return NULL;
    int flags = active_low ? (GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW | GPIOD_LINE_REQUEST_FLAG_BIAS_PULL_UP)
                           : GPIOD_LINE_REQUEST_FLAG_BIAS_PULL_DOWN;
    if (gpiod_line_request_both_edges_events_flags(line, consumer, flags) < 0) return NULL;
    return line;
#else
    struct gpiod_line_settings *settings = gpiod_line_settings_new();
    if (!settings) return NULL;
    gpiod_line_settings_set_direction(settings, GPIOD_LINE_DIRECTION_INPUT);
    gpiod_line_settings_set_edge_detection(settings, GPIOD_LINE_EDGE_BOTH);
    gpiod_line_settings_set_bias(settings, active_low ? GPIOD_LINE_BIAS_PULL_UP : GPIOD_LINE_BIAS_PULL_DOWN);
    gpiod_line_settings_set_active_low(settings, active_low != 0);
    gpiod_line_settings_set_event_clock(settings, GPIOD_LINE_CLOCK_MONOTONIC);
    gpiod_line_settings_set_debounce_period_us(settings, debounce_us);
    struct gpiod_line_request *request = cb_gpio_request_v2(chip, offset, consumer, settings);
    int saved = errno;
    gpiod_line_settings_free(settings);
    errno = saved;
    *kernel_debounce = request != NULL && debounce_us > 0;
    return request;
#endif
}

/// Requests `offset` as an output driven to `value` (logical: active-low applied).
static inline void *cb_gpio_request_output(struct gpiod_chip *chip, unsigned int offset, const char *consumer, int active_low,
                                           int value) {
#if CB_GPIOD_API == 1
    struct gpiod_line *line = gpiod_chip_get_line(chip, offset);
    if (!line) return NULL;
    int flags = active_low ? GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW : 0;
    if (gpiod_line_request_output_flags(line, consumer, flags, value) < 0) return NULL;
    return line;
#else
    struct gpiod_line_settings *settings = gpiod_line_settings_new();
    if (!settings) return NULL;
    gpiod_line_settings_set_direction(settings, GPIOD_LINE_DIRECTION_OUTPUT);
    gpiod_line_settings_set_active_low(settings, active_low != 0);
    gpiod_line_settings_set_output_value(settings, value ? GPIOD_LINE_VALUE_ACTIVE : GPIOD_LINE_VALUE_INACTIVE);
    struct gpiod_line_request *request = cb_gpio_request_v2(chip, offset, consumer, settings);
    int saved = errno;
    gpiod_line_settings_free(settings);
    errno = saved;
    return request;
#endif
}

/// Gives the line back to the kernel (its value then reverts to the chip's default).
static inline void cb_gpio_release(void *request) {
#if CB_GPIOD_API == 1
    gpiod_line_release((struct gpiod_line *)request);
#else
    gpiod_line_request_release((struct gpiod_line_request *)request);
#endif
}

/// The descriptor that becomes readable when an edge event is queued.
static inline int cb_gpio_request_fd(void *request) {
#if CB_GPIOD_API == 1
    return gpiod_line_event_get_fd((struct gpiod_line *)request);
#else
    return gpiod_line_request_get_fd((struct gpiod_line_request *)request);
#endif
}

/// The line's logical value, 0 or 1; -1 on failure.
static inline int cb_gpio_get_value(void *request, unsigned int offset) {
#if CB_GPIOD_API == 1
    (void)offset;
    return gpiod_line_get_value((struct gpiod_line *)request);
#else
    return (int)gpiod_line_request_get_value((struct gpiod_line_request *)request, offset);
#endif
}

/// Drives the line to a logical value; 0 or -1.
static inline int cb_gpio_set_value(void *request, unsigned int offset, int value) {
#if CB_GPIOD_API == 1
    (void)offset;
    return gpiod_line_set_value((struct gpiod_line *)request, value);
#else
    return gpiod_line_request_set_value((struct gpiod_line_request *)request, offset,
                                        value ? GPIOD_LINE_VALUE_ACTIVE : GPIOD_LINE_VALUE_INACTIVE);
#endif
}

/// Reads one queued edge event (blocks when none is queued: poll the fd first); 0 or -1.
static inline int cb_gpio_read_edge(void *request, struct cb_gpio_edge *edge) {
#if CB_GPIOD_API == 1
    struct gpiod_line_event event;
    if (gpiod_line_event_read((struct gpiod_line *)request, &event) < 0) return -1;
    edge->rising = event.event_type == GPIOD_LINE_EVENT_RISING_EDGE;
    edge->timestamp_ns = (uint64_t)event.ts.tv_sec * 1000000000ull + (uint64_t)event.ts.tv_nsec;
    return 0;
#else
    struct gpiod_edge_event_buffer *buffer = gpiod_edge_event_buffer_new(1);
    if (!buffer) return -1;
    int n = gpiod_line_request_read_edge_events((struct gpiod_line_request *)request, buffer, 1);
    if (n == 1) {
        struct gpiod_edge_event *event = gpiod_edge_event_buffer_get_event(buffer, 0);
        edge->rising = gpiod_edge_event_get_event_type(event) == GPIOD_EDGE_EVENT_RISING_EDGE;
        edge->timestamp_ns = gpiod_edge_event_get_timestamp_ns(event);
    }
    int saved = errno;
    gpiod_edge_event_buffer_free(buffer);
    errno = saved;
    if (n == 0) errno = EAGAIN;
    return n == 1 ? 0 : -1;
#endif
}

// Layout facts from the C compiler, so a test can prove Swift sees the same structs.
#define CB_LAYOUT(type) \
    static inline size_t cb_sizeof_##type(void) { return sizeof(struct type); } \
    static inline size_t cb_alignof_##type(void) { return _Alignof(struct type); }
#define CB_OFFSET(type, field) \
    static inline size_t cb_offsetof_##type##_##field(void) { return offsetof(struct type, field); }

CB_LAYOUT(gpiochip_info)
CB_OFFSET(gpiochip_info, label)
CB_OFFSET(gpiochip_info, lines)
CB_LAYOUT(gpio_v2_line_attribute)
CB_OFFSET(gpio_v2_line_attribute, flags)
CB_LAYOUT(gpio_v2_line_config_attribute)
CB_OFFSET(gpio_v2_line_config_attribute, mask)
CB_LAYOUT(gpio_v2_line_config)
CB_OFFSET(gpio_v2_line_config, num_attrs)
CB_OFFSET(gpio_v2_line_config, attrs)
CB_LAYOUT(gpio_v2_line_request)
CB_OFFSET(gpio_v2_line_request, consumer)
CB_OFFSET(gpio_v2_line_request, config)
CB_OFFSET(gpio_v2_line_request, num_lines)
CB_OFFSET(gpio_v2_line_request, event_buffer_size)
CB_OFFSET(gpio_v2_line_request, fd)
CB_LAYOUT(gpio_v2_line_values)
CB_OFFSET(gpio_v2_line_values, mask)
CB_LAYOUT(gpio_v2_line_info)
CB_OFFSET(gpio_v2_line_info, flags)
CB_OFFSET(gpio_v2_line_info, attrs)
CB_LAYOUT(gpio_v2_line_event)
CB_OFFSET(gpio_v2_line_event, id)
CB_OFFSET(gpio_v2_line_event, offset)
CB_OFFSET(gpio_v2_line_event, seqno)
CB_OFFSET(gpio_v2_line_event, line_seqno)

#undef CB_LAYOUT
#undef CB_OFFSET
#endif
