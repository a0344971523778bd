// Control: the lesson's control plane over MQTT: presence, raise-hand and floor grant, timetable and
// health reports, as JSON messages under the `classbox/v1/` topic tree of DESIGN.md §4.
// It must never touch hardware or media: it exchanges small messages and keeps the session's state.

/// The MQTT topics of the control protocol (DESIGN.md §4), built from validated ids so no caller can
/// produce a topic with a wildcard or an extra level.
public enum ControlTopic: Sendable, Equatable, CustomStringConvertible {
    /// `classbox/v1/box/<boxId>/state`: retained presence, last will `offline`.
    case boxState(boxId: String)
    /// `classbox/v1/box/<boxId>/health`: periodic health reports.
    case boxHealth(boxId: String)
    /// `classbox/v1/class/<classId>/session`: retained media endpoints, keys and roster.
    case classSession(classId: String)
    /// `classbox/v1/class/<classId>/hand`: raise, lower and grant events (QoS 1).
    case classHand(classId: String)
    /// `classbox/v1/school/<schoolId>/timetable`: the school's retained timetable.
    case schoolTimetable(schoolId: String)

    /// The protocol's root; the version is part of it so a v2 can live beside v1 on one broker.
    public static let root = "classbox/v1"

    /// True when `id` can be one topic level: non-empty, no `/`, no MQTT wildcards, no NUL.
    public static func isValidLevel(_ id: String) -> Bool {
        !id.isEmpty && !id.contains(where: { $0 == "/" || $0 == "+" || $0 == "#" || $0 == "\0" })
    }

    /// The topic string, or nil when an id cannot be a topic level.
    public var topic: String? {
        let (kind, id, leaf): (String, String, String)
        switch self {
        case .boxState(let boxId): (kind, id, leaf) = ("box", boxId, "state")
        case .boxHealth(let boxId): (kind, id, leaf) = ("box", boxId, "health")
        case .classSession(let classId): (kind, id, leaf) = ("class", classId, "session")
        case .classHand(let classId): (kind, id, leaf) = ("class", classId, "hand")
        case .schoolTimetable(let schoolId): (kind, id, leaf) = ("school", schoolId, "timetable")
        }
        guard ControlTopic.isValidLevel(id) else { return nil }
        return "\(ControlTopic.root)/\(kind)/\(id)/\(leaf)"
    }

    public var description: String { topic ?? "<invalid topic>" }
}
