// One shared 1-second clock for every countdown on the page.
const callbacks = new Set();
let timer = null;

function tick() {
  for (const fn of [...callbacks]) {
    try { fn(); } catch (err) { console.error(err); }
  }
}

/** Run fn now and every second until the returned function is called. */
export function everySecond(fn) {
  callbacks.add(fn);
  fn();
  if (!timer) {
    // Align to the wall-clock second so several countdowns change together.
    timer = setInterval(tick, 1000);
  }
  return () => {
    callbacks.delete(fn);
    if (!callbacks.size && timer) {
      clearInterval(timer);
      timer = null;
    }
  };
}
