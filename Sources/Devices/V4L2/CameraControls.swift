internal import CV4L2
#if canImport(Glibc)
internal import Glibc
#endif

/// A camera control (brightness, exposure, pan...) with its range and current value.
public struct CameraControlInfo: Sendable, Codable, Hashable {
    /// The kind of value.
    public enum Kind: String, Sendable, Codable { case integer, boolean, menu, integerMenu = "integer-menu", button, integer64, other }
    /// One choice of a menu control.
    public struct MenuItem: Sendable, Codable, Hashable {
        /// The value that selects it.
        public var value: Int64
        /// Its name (or its number, for integer menus).
        public var name: String
    }

    /// The V4L2 control id.
    public var id: UInt32
    /// The name presets use: a stable key for the common controls (`brightness`, `exposure`, `pan`,
    /// `tilt`, `zoom`...), else the driver's name in lower case with underscores.
    public var key: String
    /// The driver's name for it.
    public var name: String
    /// The kind of value.
    public var kind: Kind
    /// Smallest value.
    public var minimum: Int64
    /// Largest value.
    public var maximum: Int64
    /// Step between values.
    public var step: Int64
    /// The driver's default.
    public var defaultValue: Int64
    /// The value now, when it could be read.
    public var value: Int64?
    /// Menu choices.
    public var menu: [MenuItem]?
    /// Whether it can only be read.
    public var readOnly: Bool
    /// Whether it has no effect now (e.g. exposure while auto exposure is on).
    public var inactive: Bool
}

/// Stable keys for the controls a classroom needs, by V4L2 id.
let wellKnownControlKeys: [UInt32: String] = [
    UInt32(V4L2_CID_BRIGHTNESS): "brightness",
    UInt32(V4L2_CID_CONTRAST): "contrast",
    UInt32(V4L2_CID_SATURATION): "saturation",
    UInt32(V4L2_CID_HUE): "hue",
    UInt32(V4L2_CID_GAIN): "gain",
    UInt32(V4L2_CID_SHARPNESS): "sharpness",
    UInt32(V4L2_CID_AUTO_WHITE_BALANCE): "white_balance_auto",
    UInt32(V4L2_CID_WHITE_BALANCE_TEMPERATURE): "white_balance_temperature",
    UInt32(V4L2_CID_POWER_LINE_FREQUENCY): "power_line_frequency",
    UInt32(V4L2_CID_BACKLIGHT_COMPENSATION): "backlight_compensation",
    UInt32(V4L2_CID_EXPOSURE_AUTO): "exposure_auto",
    UInt32(V4L2_CID_EXPOSURE_ABSOLUTE): "exposure",
    UInt32(V4L2_CID_FOCUS_AUTO): "focus_auto",
    UInt32(V4L2_CID_FOCUS_ABSOLUTE): "focus",
    UInt32(V4L2_CID_PAN_ABSOLUTE): "pan",
    UInt32(V4L2_CID_TILT_ABSOLUTE): "tilt",
    UInt32(V4L2_CID_ZOOM_ABSOLUTE): "zoom",
]

/// Stable keys for the encoder controls the firmware sets (never camera presets).
let encoderControlKeys: [UInt32: String] = [
    UInt32(V4L2_CID_MPEG_VIDEO_BITRATE): "video_bitrate",
    UInt32(V4L2_CID_MPEG_VIDEO_GOP_SIZE): "video_gop_size",
    UInt32(V4L2_CID_MPEG_VIDEO_H264_I_PERIOD): "h264_i_frame_period",
    UInt32(V4L2_CID_MPEG_VIDEO_H264_PROFILE): "h264_profile",
    UInt32(V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER): "repeat_sequence_header",
    UInt32(V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME): "force_key_frame",
]

/// A control's preset key from its driver name: "White Balance, Automatic" -> "white_balance_automatic".
func controlKey(id: UInt32, name: String) -> String {
    if let key = wellKnownControlKeys[id] ?? encoderControlKeys[id] { return key }
    var key = ""
    for c in name.lowercased().unicodeScalars {
        if CharacterSet_isAlphanumeric(c) { key.unicodeScalars.append(c) } else if !key.isEmpty && key.last != "_" { key.append("_") }
    }
    while key.last == "_" { key.removeLast() }
    return key
}

private func CharacterSet_isAlphanumeric(_ c: Unicode.Scalar) -> Bool {
    (c >= "a" && c <= "z") || (c >= "0" && c <= "9")
}

extension VideoDeviceInfo {
    /// Lists the device's controls (class headers and disabled controls left out).
    static func controls(_ handle: borrowing VideoDeviceHandle) -> [CameraControlInfo] {
        var result: [CameraControlInfo] = []
        var id = UInt32(V4L2_CTRL_FLAG_NEXT_CTRL)
        while true {
            var query = v4l2_query_ext_ctrl()
            query.id = id
            do { try handle.call(.queryExtendedControl, &query) } catch { break }  // EINVAL: the end; ENOTTY: none
            id = query.id | UInt32(V4L2_CTRL_FLAG_NEXT_CTRL)
            let flags = query.flags
            guard flags & UInt32(V4L2_CTRL_FLAG_DISABLED) == 0, query.type != V4L2_CTRL_TYPE_CTRL_CLASS.rawValue else { continue }
            let kind: CameraControlInfo.Kind
            switch query.type {
            case V4L2_CTRL_TYPE_INTEGER.rawValue: kind = .integer
            case V4L2_CTRL_TYPE_BOOLEAN.rawValue: kind = .boolean
            case V4L2_CTRL_TYPE_MENU.rawValue: kind = .menu
            case V4L2_CTRL_TYPE_INTEGER_MENU.rawValue: kind = .integerMenu
            case V4L2_CTRL_TYPE_BUTTON.rawValue: kind = .button
            case V4L2_CTRL_TYPE_INTEGER64.rawValue: kind = .integer64
            default: kind = .other
            }
            let name = cString(of: &query.name)
            var control = CameraControlInfo(
                id: query.id, key: controlKey(id: query.id, name: name), name: name, kind: kind, minimum: query.minimum,
                maximum: query.maximum, step: Int64(truncatingIfNeeded: query.step), defaultValue: query.default_value, value: nil,
                menu: nil, readOnly: flags & UInt32(V4L2_CTRL_FLAG_READ_ONLY) != 0, inactive: flags & UInt32(V4L2_CTRL_FLAG_INACTIVE) != 0)
            if [.integer, .boolean, .menu, .integerMenu].contains(kind), flags & UInt32(V4L2_CTRL_FLAG_WRITE_ONLY) == 0 {
                var value = v4l2_control(id: query.id, value: 0)
                if (try? handle.call(.getControl, &value)) != nil { control.value = Int64(value.value) }
            }
            if kind == .menu || kind == .integerMenu, query.maximum - query.minimum < 64 {
                var items: [CameraControlInfo.MenuItem] = []
                for index in query.minimum...query.maximum {
                    var item = v4l2_querymenu()
                    item.id = query.id
                    item.index = UInt32(truncatingIfNeeded: index)
                    guard (try? handle.call(.queryMenu, &item)) != nil else { continue }  // EINVAL: a gap in the menu
                    items.append(.init(value: index, name: kind == .menu ? cString(of: &item.name) : String(item.value)))
                }
                control.menu = items
            }
            result.append(control)
        }
        return result
    }
}

extension VideoDeviceHandle {
    /// Sets one control, checked against its range first so the message can say what is allowed.
    func setControl(_ key: String, _ value: Int64, controls: [CameraControlInfo], device: String) throws(CameraError) {
        guard let control = controls.first(where: { $0.key == key }) else {
            throw CameraError(kind: .unsupported, device: device, call: "VIDIOC_S_CTRL",
                              detail: "the camera has no control \"\(key)\"; it has: \(controls.filter { !$0.readOnly }.map(\.key).joined(separator: ", "))")
        }
        guard !control.readOnly, value >= control.minimum, value <= control.maximum,
              control.step <= 1 || (value - control.minimum) % control.step == 0 else {
            throw CameraError(kind: .refused, device: device, call: "VIDIOC_S_CTRL",
                              detail: control.readOnly ? "control \"\(key)\" is read-only"
                                  : "control \"\(key)\" takes \(control.minimum)...\(control.maximum) in steps of \(max(1, control.step)), not \(value)")
        }
        var c = v4l2_control(id: control.id, value: Int32(truncatingIfNeeded: value))
        do { try call(.setControl, &c) } catch {
            throw CameraError.from(error, device: device, call: "VIDIOC_S_CTRL", refused: "the camera refused \(key) = \(value)")
        }
    }

    /// Reads one control's value.
    func control(_ key: String, controls: [CameraControlInfo], device: String) throws(CameraError) -> Int64 {
        guard let control = controls.first(where: { $0.key == key }) else {
            throw CameraError(kind: .unsupported, device: device, call: "VIDIOC_G_CTRL", detail: "the camera has no control \"\(key)\"")
        }
        var c = v4l2_control(id: control.id, value: 0)
        do { try call(.getControl, &c) } catch { throw CameraError.from(error, device: device, call: "VIDIOC_G_CTRL") }
        return Int64(c.value)
    }
}
