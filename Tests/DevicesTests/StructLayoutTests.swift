import CGpiod
import CV4L2
import Testing

/// One struct's layout as Swift imports it and as the C compiler lays it out.
struct Layout: CustomStringConvertible, Sendable {
    var name: String
    var swiftSize: Int, cSize: Int
    var swiftAlignment: Int, cAlignment: Int
    var fields: [(name: String, swift: Int?, c: Int)]
    var description: String { name }

    init<T>(_ type: T.Type, _ name: String, size: Int, alignment: Int, fields: [(String, PartialKeyPath<T>, Int)]) {
        self.name = name
        swiftSize = MemoryLayout<T>.size
        cSize = size
        swiftAlignment = MemoryLayout<T>.alignment
        cAlignment = alignment
        self.fields = fields.map { ($0.0, MemoryLayout<T>.offset(of: $0.1), $0.2) }
    }
}

// The kernel UAPI structs the camera and GPIO drivers pass through ioctl: if Swift's idea of a size or
// field offset drifts from C's (a new kernel header, packing, a union), the ioctl number and the data
// disagree silently. Sizes, alignments and the offsets of fields after unions or arrays are compared.
let v4l2Layouts: [Layout] = [
    Layout(v4l2_capability.self, "v4l2_capability", size: cb_sizeof_v4l2_capability(), alignment: cb_alignof_v4l2_capability(),
           fields: [("capabilities", \.capabilities, cb_offsetof_v4l2_capability_capabilities()),
                    ("device_caps", \.device_caps, cb_offsetof_v4l2_capability_device_caps())]),
    Layout(v4l2_fmtdesc.self, "v4l2_fmtdesc", size: cb_sizeof_v4l2_fmtdesc(), alignment: cb_alignof_v4l2_fmtdesc(),
           fields: [("pixelformat", \.pixelformat, cb_offsetof_v4l2_fmtdesc_pixelformat()),
                    ("mbus_code", \.mbus_code, cb_offsetof_v4l2_fmtdesc_mbus_code())]),
    Layout(v4l2_format.self, "v4l2_format", size: cb_sizeof_v4l2_format(), alignment: cb_alignof_v4l2_format(),
           fields: [("fmt", \.fmt, cb_offsetof_v4l2_format_fmt())]),
    Layout(v4l2_pix_format.self, "v4l2_pix_format", size: cb_sizeof_v4l2_pix_format(), alignment: cb_alignof_v4l2_pix_format(),
           fields: [("sizeimage", \.sizeimage, cb_offsetof_v4l2_pix_format_sizeimage()),
                    ("quantization", \.quantization, cb_offsetof_v4l2_pix_format_quantization())]),
    Layout(v4l2_frmsizeenum.self, "v4l2_frmsizeenum", size: cb_sizeof_v4l2_frmsizeenum(), alignment: cb_alignof_v4l2_frmsizeenum(),
           fields: [("type", \.type, cb_offsetof_v4l2_frmsizeenum_type())]),
    Layout(v4l2_frmivalenum.self, "v4l2_frmivalenum", size: cb_sizeof_v4l2_frmivalenum(), alignment: cb_alignof_v4l2_frmivalenum(),
           fields: [("type", \.type, cb_offsetof_v4l2_frmivalenum_type())]),
    Layout(v4l2_requestbuffers.self, "v4l2_requestbuffers", size: cb_sizeof_v4l2_requestbuffers(), alignment: cb_alignof_v4l2_requestbuffers(),
           fields: [("memory", \.memory, cb_offsetof_v4l2_requestbuffers_memory())]),
    Layout(v4l2_buffer.self, "v4l2_buffer", size: cb_sizeof_v4l2_buffer(), alignment: cb_alignof_v4l2_buffer(),
           fields: [("timestamp", \.timestamp, cb_offsetof_v4l2_buffer_timestamp()),
                    ("timecode", \.timecode, cb_offsetof_v4l2_buffer_timecode()),
                    ("sequence", \.sequence, cb_offsetof_v4l2_buffer_sequence()),
                    ("memory", \.memory, cb_offsetof_v4l2_buffer_memory()),
                    ("m", \.m, cb_offsetof_v4l2_buffer_m()),
                    ("length", \.length, cb_offsetof_v4l2_buffer_length())]),
    Layout(v4l2_plane.self, "v4l2_plane", size: cb_sizeof_v4l2_plane(), alignment: cb_alignof_v4l2_plane(),
           fields: [("m", \.m, cb_offsetof_v4l2_plane_m()), ("data_offset", \.data_offset, cb_offsetof_v4l2_plane_data_offset())]),
    Layout(v4l2_pix_format_mplane.self, "v4l2_pix_format_mplane", size: cb_sizeof_v4l2_pix_format_mplane(),
           alignment: cb_alignof_v4l2_pix_format_mplane(),
           fields: [("plane_fmt", \.plane_fmt, cb_offsetof_v4l2_pix_format_mplane_plane_fmt()),
                    ("num_planes", \.num_planes, cb_offsetof_v4l2_pix_format_mplane_num_planes())]),
    Layout(v4l2_encoder_cmd.self, "v4l2_encoder_cmd", size: cb_sizeof_v4l2_encoder_cmd(), alignment: cb_alignof_v4l2_encoder_cmd(),
           fields: [("flags", \.flags, cb_offsetof_v4l2_encoder_cmd_flags())]),
    Layout(v4l2_streamparm.self, "v4l2_streamparm", size: cb_sizeof_v4l2_streamparm(), alignment: cb_alignof_v4l2_streamparm(),
           fields: [("parm", \.parm, cb_offsetof_v4l2_streamparm_parm())]),
    Layout(v4l2_queryctrl.self, "v4l2_queryctrl", size: cb_sizeof_v4l2_queryctrl(), alignment: cb_alignof_v4l2_queryctrl(),
           fields: [("default_value", \.default_value, cb_offsetof_v4l2_queryctrl_default_value())]),
    Layout(v4l2_query_ext_ctrl.self, "v4l2_query_ext_ctrl", size: cb_sizeof_v4l2_query_ext_ctrl(), alignment: cb_alignof_v4l2_query_ext_ctrl(),
           fields: [("elem_size", \.elem_size, cb_offsetof_v4l2_query_ext_ctrl_elem_size())]),
    Layout(v4l2_control.self, "v4l2_control", size: cb_sizeof_v4l2_control(), alignment: cb_alignof_v4l2_control(), fields: []),
    Layout(v4l2_ext_control.self, "v4l2_ext_control", size: cb_sizeof_v4l2_ext_control(), alignment: cb_alignof_v4l2_ext_control(),
           fields: []),
    Layout(v4l2_ext_controls.self, "v4l2_ext_controls", size: cb_sizeof_v4l2_ext_controls(), alignment: cb_alignof_v4l2_ext_controls(),
           fields: [("controls", \.controls, cb_offsetof_v4l2_ext_controls_controls())]),
    Layout(input_event.self, "input_event", size: cb_sizeof_input_event(), alignment: cb_alignof_input_event(),
           fields: [("type", \.type, cb_offsetof_input_event_type()), ("value", \.value, cb_offsetof_input_event_value())]),
]

let gpioLayouts: [Layout] = {
    let layouts = [
        Layout(gpiochip_info.self, "gpiochip_info", size: cb_sizeof_gpiochip_info(), alignment: cb_alignof_gpiochip_info(),
               fields: [("label", \.label, cb_offsetof_gpiochip_info_label()), ("lines", \.lines, cb_offsetof_gpiochip_info_lines())]),
        Layout(gpio_v2_line_attribute.self, "gpio_v2_line_attribute", size: cb_sizeof_gpio_v2_line_attribute(),
               alignment: cb_alignof_gpio_v2_line_attribute(), fields: []),
        Layout(gpio_v2_line_config_attribute.self, "gpio_v2_line_config_attribute", size: cb_sizeof_gpio_v2_line_config_attribute(),
               alignment: cb_alignof_gpio_v2_line_config_attribute(),
               fields: [("mask", \.mask, cb_offsetof_gpio_v2_line_config_attribute_mask())]),
        Layout(gpio_v2_line_config.self, "gpio_v2_line_config", size: cb_sizeof_gpio_v2_line_config(), alignment: cb_alignof_gpio_v2_line_config(),
               fields: [("num_attrs", \.num_attrs, cb_offsetof_gpio_v2_line_config_num_attrs()),
                        ("attrs", \.attrs, cb_offsetof_gpio_v2_line_config_attrs())]),
        Layout(gpio_v2_line_request.self, "gpio_v2_line_request", size: cb_sizeof_gpio_v2_line_request(), alignment: cb_alignof_gpio_v2_line_request(),
               fields: [("consumer", \.consumer, cb_offsetof_gpio_v2_line_request_consumer()),
                        ("config", \.config, cb_offsetof_gpio_v2_line_request_config()),
                        ("num_lines", \.num_lines, cb_offsetof_gpio_v2_line_request_num_lines()),
                        ("event_buffer_size", \.event_buffer_size, cb_offsetof_gpio_v2_line_request_event_buffer_size()),
                        ("fd", \.fd, cb_offsetof_gpio_v2_line_request_fd())]),
        Layout(gpio_v2_line_values.self, "gpio_v2_line_values", size: cb_sizeof_gpio_v2_line_values(), alignment: cb_alignof_gpio_v2_line_values(),
               fields: [("mask", \.mask, cb_offsetof_gpio_v2_line_values_mask())]),
        Layout(gpio_v2_line_info.self, "gpio_v2_line_info", size: cb_sizeof_gpio_v2_line_info(), alignment: cb_alignof_gpio_v2_line_info(),
               fields: [("flags", \.flags, cb_offsetof_gpio_v2_line_info_flags()), ("attrs", \.attrs, cb_offsetof_gpio_v2_line_info_attrs())]),
        Layout(gpio_v2_line_event.self, "gpio_v2_line_event", size: cb_sizeof_gpio_v2_line_event(), alignment: cb_alignof_gpio_v2_line_event(),
               fields: [("id", \.id, cb_offsetof_gpio_v2_line_event_id()), ("offset", \.offset, cb_offsetof_gpio_v2_line_event_offset()),
                        ("seqno", \.seqno, cb_offsetof_gpio_v2_line_event_seqno()),
                        ("line_seqno", \.line_seqno, cb_offsetof_gpio_v2_line_event_line_seqno())]),
    ]
    return layouts
}()

@Suite("Struct layouts: Swift's view of the kernel and library structs equals C's")
struct StructLayoutTests {
    @Test("V4L2 and evdev structs", arguments: v4l2Layouts)
    func v4l2(layout: Layout) { check(layout) }

    @Test("GPIO structs", arguments: gpioLayouts)
    func gpio(layout: Layout) { check(layout) }

    @Test("the tables cover the structs the drivers use")
    func coverage() {
        #expect(v4l2Layouts.count == 18)
        #expect(gpioLayouts.count == 8)
        #expect(cb_gpiod_api_version() == 1 || cb_gpiod_api_version() == 2)
    }

    func check(_ layout: Layout) {
        #expect(layout.swiftSize == layout.cSize, "\(layout.name): size")
        #expect(layout.swiftAlignment == layout.cAlignment, "\(layout.name): alignment")
        for field in layout.fields {
            #expect(field.swift == field.c, "\(layout.name).\(field.name): offset")
        }
    }
}
