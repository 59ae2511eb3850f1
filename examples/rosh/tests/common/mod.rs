//! What both rosh test files need.

use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::Child;

/// Sends Ctrl-C (SIGINT) to a running rosh and waits for it to exit.
pub async fn interrupt(child: &mut Child) -> ExitStatus {
    let pid = child.id().expect("rosh is running").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-s", "INT", &pid])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("rosh stops after Ctrl-C")
        .expect("rosh's exit status")
}
