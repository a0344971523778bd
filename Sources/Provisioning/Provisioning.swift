// Provisioning: configures a fleet of boxes over SSH from an administrator's laptop, from one inventory
// file, changing only what differs and never leaving a box half-configured.
// It must never run on the box itself or weaken SSH's host-key checks.
