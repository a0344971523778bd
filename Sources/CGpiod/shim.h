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
