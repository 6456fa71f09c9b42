//! One module per subcommand.

pub mod apikey;
pub mod audit;
pub mod batch;
pub mod channels;
pub mod chat;
pub mod cluster;
pub mod doctor;
pub mod init;
pub mod mcp;
pub mod memory;
pub mod migrate;
pub mod route;
pub mod run;
pub mod runs;
pub mod schedule;
pub mod serve;
pub mod service;
pub mod sessions;
pub mod status;
pub mod worker;

use anyhow::Result;
use cairn_core::{RunEvent, RunRecord};
use cairn_runtime::{Runtime, TurnRequest};
use tokio_util::sync::CancellationToken;

/// Runs a turn; the first Ctrl-C cancels it (the run is recorded as
/// cancelled, its tools killed, its session freed).
pub async fn turn_with_ctrl_c(
    rt: &Runtime,
    req: TurnRequest,
    on_event: &(dyn Fn(RunEvent) + Send + Sync),
) -> Result<RunRecord> {
    let cancel = CancellationToken::new();
    let turn = rt.run_turn(req, on_event, cancel.clone());
    tokio::pin!(turn);
    loop {
        tokio::select! {
            r = &mut turn => return Ok(r?),
            _ = tokio::signal::ctrl_c(), if !cancel.is_cancelled() => {
                eprintln!("\n· stopping this turn (Ctrl-C)…");
                cancel.cancel();
            }
        }
    }
}
