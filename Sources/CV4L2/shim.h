// CV4L2: Video4Linux2 (kernel UAPI) and libv4l2 for Swift. Only what Swift cannot import directly
// lives here: the variadic ioctl()/v4l2_open()/v4l2_ioctl() and the VIDIOC_* / V4L2_PIX_FMT_* macros,
// whose values encode struct sizes and so must come from the C compiler, never be hard-coded.
#ifndef CLASSBOX_CV4L2_SHIM_H
#define CLASSBOX_CV4L2_SHIM_H
#include <fcntl.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <linux/videodev2.h>
#include <linux/input.h>
#include <linux/uinput.h>
#include <libv4l2.h>

static inline int cb_ioctl(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }
static inline int cb_ioctl_int(int fd, unsigned long request, int value) { return ioctl(fd, request, value); }
static inline int cb_v4l2_open(const char *path, int flags) { return v4l2_open(path, flags); }
static inline int cb_v4l2_ioctl(int fd, unsigned long request, void *arg) { return v4l2_ioctl(fd, request, arg); }

// ioctl request numbers.
static inline unsigned long cb_VIDIOC_QUERYCAP(void) { return VIDIOC_QUERYCAP; }
static inline unsigned long cb_VIDIOC_ENUM_FMT(void) { return VIDIOC_ENUM_FMT; }
static inline unsigned long cb_VIDIOC_G_FMT(void) { return VIDIOC_G_FMT; }
static inline unsigned long cb_VIDIOC_S_FMT(void) { return VIDIOC_S_FMT; }
static inline unsigned long cb_VIDIOC_TRY_FMT(void) { return VIDIOC_TRY_FMT; }
static inline unsigned long cb_VIDIOC_ENUM_FRAMESIZES(void) { return VIDIOC_ENUM_FRAMESIZES; }
static inline unsigned long cb_VIDIOC_ENUM_FRAMEINTERVALS(void) { return VIDIOC_ENUM_FRAMEINTERVALS; }
static inline unsigned long cb_VIDIOC_G_PARM(void) { return VIDIOC_G_PARM; }
static inline unsigned long cb_VIDIOC_S_PARM(void) { return VIDIOC_S_PARM; }
static inline unsigned long cb_VIDIOC_REQBUFS(void) { return VIDIOC_REQBUFS; }
static inline unsigned long cb_VIDIOC_QUERYBUF(void) { return VIDIOC_QUERYBUF; }
static inline unsigned long cb_VIDIOC_QBUF(void) { return VIDIOC_QBUF; }
static inline unsigned long cb_VIDIOC_DQBUF(void) { return VIDIOC_DQBUF; }
static inline unsigned long cb_VIDIOC_STREAMON(void) { return VIDIOC_STREAMON; }
static inline unsigned long cb_VIDIOC_STREAMOFF(void) { return VIDIOC_STREAMOFF; }
static inline unsigned long cb_VIDIOC_QUERYCTRL(void) { return VIDIOC_QUERYCTRL; }
static inline unsigned long cb_VIDIOC_QUERY_EXT_CTRL(void) { return VIDIOC_QUERY_EXT_CTRL; }
static inline unsigned long cb_VIDIOC_QUERYMENU(void) { return VIDIOC_QUERYMENU; }
static inline unsigned long cb_VIDIOC_G_CTRL(void) { return VIDIOC_G_CTRL; }
static inline unsigned long cb_VIDIOC_S_CTRL(void) { return VIDIOC_S_CTRL; }
static inline unsigned long cb_VIDIOC_G_EXT_CTRLS(void) { return VIDIOC_G_EXT_CTRLS; }
static inline unsigned long cb_VIDIOC_S_EXT_CTRLS(void) { return VIDIOC_S_EXT_CTRLS; }
static inline unsigned long cb_VIDIOC_ENCODER_CMD(void) { return VIDIOC_ENCODER_CMD; }
static inline unsigned long cb_VIDIOC_TRY_ENCODER_CMD(void) { return VIDIOC_TRY_ENCODER_CMD; }
// uinput: the VM lane's virtual keyboard (a real input device made by the kernel's uinput driver).
static inline unsigned long cb_UI_SET_EVBIT(void) { return UI_SET_EVBIT; }
static inline unsigned long cb_UI_SET_KEYBIT(void) { return UI_SET_KEYBIT; }
static inline unsigned long cb_UI_DEV_SETUP(void) { return UI_DEV_SETUP; }
static inline unsigned long cb_UI_DEV_CREATE(void) { return UI_DEV_CREATE; }
static inline unsigned long cb_UI_DEV_DESTROY(void) { return UI_DEV_DESTROY; }
static inline unsigned long cb_EVIOCGNAME(unsigned int len) { return EVIOCGNAME(len); }
static inline unsigned long cb_EVIOCSCLOCKID(void) { return EVIOCSCLOCKID; }
static inline unsigned long cb_EVIOCGKEY(unsigned int len) { return EVIOCGKEY(len); }

// Pixel formats (v4l2_fourcc is a function-like macro).
static inline unsigned int cb_V4L2_PIX_FMT_YUYV(void) { return V4L2_PIX_FMT_YUYV; }
static inline unsigned int cb_V4L2_PIX_FMT_MJPEG(void) { return V4L2_PIX_FMT_MJPEG; }
static inline unsigned int cb_V4L2_PIX_FMT_JPEG(void) { return V4L2_PIX_FMT_JPEG; }
static inline unsigned int cb_V4L2_PIX_FMT_H264(void) { return V4L2_PIX_FMT_H264; }
static inline unsigned int cb_V4L2_PIX_FMT_NV12(void) { return V4L2_PIX_FMT_NV12; }
static inline unsigned int cb_V4L2_PIX_FMT_YUV420(void) { return V4L2_PIX_FMT_YUV420; }
static inline unsigned int cb_V4L2_PIX_FMT_FWHT(void) { return V4L2_PIX_FMT_FWHT; }
static inline unsigned int cb_V4L2_PIX_FMT_HEVC(void) { return V4L2_PIX_FMT_HEVC; }

// Layout facts from the C compiler, so a test can prove Swift sees the same structs.
#define CB_LAYOUT(type) \
    static inline size_t cb_sizeof_##type(void) { return sizeof(struct type); } \
    static inline size_t cb_alignof_##type(void) { return _Alignof(struct type); }
#define CB_OFFSET(type, field) \
    static inline size_t cb_offsetof_##type##_##field(void) { return offsetof(struct type, field); }

CB_LAYOUT(v4l2_capability)
CB_OFFSET(v4l2_capability, capabilities)
CB_OFFSET(v4l2_capability, device_caps)
CB_LAYOUT(v4l2_fmtdesc)
CB_OFFSET(v4l2_fmtdesc, pixelformat)
CB_OFFSET(v4l2_fmtdesc, mbus_code)
CB_LAYOUT(v4l2_format)
CB_OFFSET(v4l2_format, fmt)
CB_LAYOUT(v4l2_pix_format)
CB_OFFSET(v4l2_pix_format, sizeimage)
CB_OFFSET(v4l2_pix_format, quantization)
CB_LAYOUT(v4l2_frmsizeenum)
CB_OFFSET(v4l2_frmsizeenum, type)
CB_LAYOUT(v4l2_frmivalenum)
CB_OFFSET(v4l2_frmivalenum, type)
CB_LAYOUT(v4l2_requestbuffers)
CB_OFFSET(v4l2_requestbuffers, memory)
CB_LAYOUT(v4l2_buffer)
CB_OFFSET(v4l2_buffer, timestamp)
CB_OFFSET(v4l2_buffer, timecode)
CB_OFFSET(v4l2_buffer, sequence)
CB_OFFSET(v4l2_buffer, memory)
CB_OFFSET(v4l2_buffer, m)
CB_OFFSET(v4l2_buffer, length)
CB_LAYOUT(v4l2_plane)
CB_OFFSET(v4l2_plane, m)
CB_OFFSET(v4l2_plane, data_offset)
CB_LAYOUT(v4l2_pix_format_mplane)
CB_OFFSET(v4l2_pix_format_mplane, plane_fmt)
CB_OFFSET(v4l2_pix_format_mplane, num_planes)
CB_LAYOUT(v4l2_encoder_cmd)
CB_OFFSET(v4l2_encoder_cmd, flags)
CB_LAYOUT(v4l2_streamparm)
CB_OFFSET(v4l2_streamparm, parm)
CB_LAYOUT(v4l2_queryctrl)
CB_OFFSET(v4l2_queryctrl, default_value)
CB_LAYOUT(v4l2_query_ext_ctrl)
CB_OFFSET(v4l2_query_ext_ctrl, elem_size)
CB_LAYOUT(v4l2_control)
CB_LAYOUT(v4l2_ext_control)
CB_OFFSET(v4l2_ext_control, value)
CB_LAYOUT(v4l2_ext_controls)
CB_OFFSET(v4l2_ext_controls, controls)
CB_LAYOUT(input_event)
CB_OFFSET(input_event, type)
CB_OFFSET(input_event, value)

#undef CB_LAYOUT
#undef CB_OFFSET
#endif
