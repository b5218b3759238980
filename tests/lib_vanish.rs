//! An obtain racing with the removal of the run directory (a /tmp cleaner,
//! an operator's `rm -rf`) starts again on the new directory instead of
//! failing with "No such file or directory".

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use elect::Election;

#[test]
fn obtains_survive_the_run_directory_being_removed_again_and_again() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    for tickets in [1, 2] {
        let e = Election::builder("r")
            .tickets(tickets)
            .dir(&run)
            .build()
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let remover = {
            let (stop, run) = (Arc::clone(&stop), run.clone());
            std::thread::spawn(move || {
                let mut removals = 0;
                while !stop.load(Ordering::Relaxed) {
                    if std::fs::remove_dir_all(&run).is_ok() {
                        removals += 1;
                    }
                    // Often, but not so often that a loaded machine never gets an
                    // obtain in between (after 1,000 vanishings in a row an obtain
                    // reports the error).
                    std::thread::sleep(Duration::from_millis(2));
                }
                removals
            })
        };
        let start = Instant::now();
        let mut obtained = 0;
        while start.elapsed() < Duration::from_secs(1) {
            match e.try_obtain() {
                Ok(Some(_)) => obtained += 1,
                Ok(None) => {}
                Err(err) => {
                    panic!("try_obtain failed while the directory was being removed: {err}")
                }
            }
            if let Some(t) = e.obtain_timeout(Duration::from_millis(50)).unwrap() {
                obtained += 1;
                drop(t);
            }
        }
        stop.store(true, Ordering::Relaxed);
        let removals = remover.join().unwrap();
        assert!(
            removals > 10,
            "the directory was removed only {removals} times"
        );
        assert!(obtained > 3, "only {obtained} tickets obtained");
    }
}
