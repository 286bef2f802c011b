//! A tokio runtime serving on a thread of its own, stopped on request or
//! when dropped: how the tokio and axum peers run beside the test or
//! benchmark that started them.

use std::future::Future;
use std::io;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

/// A multi-thread runtime and the thread that drives its server.
pub(crate) struct RuntimeThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RuntimeThread {
    /// Builds a multi-thread runtime (`threads` workers, default: one per
    /// CPU; threads named `name`) and runs `serve(stopped)` on a thread
    /// named `name-main` until it returns; `stopped` resolves when
    /// [`stop`](Self::stop) is called. Then the runtime's tasks get `grace`
    /// to end before they are dropped.
    ///
    /// # Errors
    /// Building the runtime or spawning the thread failed.
    pub(crate) fn spawn<F, Fut>(
        name: &str,
        threads: Option<usize>,
        grace: Duration,
        serve: F,
    ) -> io::Result<RuntimeThread>
    where
        F: FnOnce(oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.enable_all().thread_name(name);
        if let Some(threads) = threads {
            builder.worker_threads(threads.max(1));
        }
        let runtime = builder.build()?;
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-main"))
            .spawn(move || {
                runtime.block_on(serve(stopped));
                runtime.shutdown_timeout(grace);
            })?;
        Ok(RuntimeThread {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Blocks the calling thread until the server returns.
    pub(crate) fn wait(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Tells the server to stop and waits for the thread.
    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.wait();
    }
}

impl Drop for RuntimeThread {
    fn drop(&mut self) {
        self.stop();
    }
}
