//! KATA-compatible CEF over syslog (work in progress).
