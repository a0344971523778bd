// Provisioning: configures a fleet of boxes over SSH from an administrator's laptop, from one inventory
// file, changing only what differs and never leaving a box half-configured.
// It must never run on the box itself or weaken SSH's host-key checks.
//
// The transport is the system OpenSSH client (one ControlMaster connection per box), so the
// administrator's keys, agent, ~/.ssh/config and known_hosts work unchanged. swift-nio-ssh is not
// used: swift-nio does not resolve with the image's Swift 6.0.3 (its manifest needs tools 6.1).
import Foundation

/// How `classbox provision` ends, as a process exit code.
public enum ProvisionExit {
    /// Every box is ok or was changed.
    public static let success: Int32 = 0
    /// The inventory or the command line is wrong: nothing was sent to any box.
    public static let usage: Int32 = 2
    /// At least one box failed or was unreachable (the recap says which and why).
    public static let boxesFailed: Int32 = 3
}
