//! Running as a systemd service (Type=notify): readiness once every hook is
//! attached, stopping on SIGTERM, and the watchdog when the unit asks.

use std::time::Duration;

use libsystemd::daemon::{self, NotifyState};

/// Tells systemd (if it is listening: NOTIFY_SOCKET) something changed.
fn notify(state: NotifyState) {
    if let Err(e) = daemon::notify(false, &[state]) {
        log::warn!("cannot notify systemd: {e}");
    }
}

pub fn ready() {
    notify(NotifyState::Ready);
}

pub fn stopping() {
    notify(NotifyState::Stopping);
}

pub fn watchdog_ping() {
    notify(NotifyState::Watchdog);
}

/// How often to ping the watchdog: half its timeout, when the unit set
/// WatchdogSec (WATCHDOG_USEC).
pub fn watchdog_interval() -> Option<Duration> {
    daemon::watchdog_enabled(false).filter(|t| !t.is_zero()).map(|t| t / 2)
}
