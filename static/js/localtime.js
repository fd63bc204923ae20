/* Progressive enhancement: show <time datetime="…"> elements in the reader's own time zone.
   The server text (in the page's zone) stays when scripts are off, and moves to the title. */
(function () {
  "use strict";
  if (!window.Intl || !Intl.DateTimeFormat) return;
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  if (!zone) return;
  var lang = document.documentElement.lang || undefined;
  var base = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZoneName: "short" };
  var formats = {
    full: Object.assign({ year: "numeric" }, base),
    short: base,
    date: { year: "numeric", month: "short", day: "numeric" }
  };
  var cache = {};
  function formatter(name) {
    if (!cache[name]) {
      var options = Object.assign({ timeZone: zone }, formats[name] || formats.full);
      try { cache[name] = new Intl.DateTimeFormat(lang, options); } catch (e) { cache[name] = null; }
    }
    return cache[name];
  }
  function localise() {
    var nodes = document.querySelectorAll("time[datetime]");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      var when = new Date(node.getAttribute("datetime"));
      var f = formatter(node.getAttribute("data-fmt"));
      if (!f || isNaN(when.getTime())) continue;
      var text = f.format(when);
      if (text !== node.textContent) {
        node.title = node.textContent;
        node.textContent = text;
      }
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", localise);
  else localise();
})();
