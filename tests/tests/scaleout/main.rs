//! Past one machine, for real: `push`/`pull` through a Distribution registry (Debian's
//! `docker-registry`) that the test starts on 127.0.0.1, and `multinode` rehearsals of a LoRA
//! SFT on a tiny model (2 nodes on the host network, rendezvous on 127.0.0.1). Fails loudly
//! without Docker or docker-registry unless LEXALIGN_SKIP_DOCKER_TESTS=1 (reported as ignored).

#[path = "../common/mod.rs"]
mod common;
mod nodes;
mod registry;

use common::*;
use nodes::*;
use registry::*;

fn main() {
    let tests: Vec<(&str, fn())> = vec![
        (
            "a_stopped_two_process_container_exits_75_and_resumes_exactly",
            a_stopped_two_process_container_exits_75_and_resumes_exactly,
        ),
        (
            "stopped_runs_leave_a_resumable_checkpoint",
            stopped_runs_leave_a_resumable_checkpoint,
        ),
        (
            "push_and_pull_through_a_loopback_registry",
            push_and_pull_through_a_loopback_registry,
        ),
        (
            "split_push_then_join_like_two_runners",
            split_push_then_join_like_two_runners,
        ),
        (
            "two_nodes_train_like_two_processes_and_resume",
            two_nodes_train_like_two_processes_and_resume,
        ),
        (
            "a_killed_node_stops_the_others",
            a_killed_node_stops_the_others,
        ),
        (
            "nodes_in_different_environments_refuse_to_train",
            nodes_in_different_environments_refuse_to_train,
        ),
        (
            "bad_multinode_requests_exit_2_and_leave_nothing",
            bad_multinode_requests_exit_2_and_leave_nothing,
        ),
    ];
    run_docker_trials(tests, "registry/multi-node tests", true);
}
