(function () {
  "use strict";
  var stage = document.getElementById("turntable");
  if (stage) {
    var frames = Array.prototype.slice.call(stage.querySelectorAll("img"));
    var label = document.getElementById("turntable-angle");
    var index = 0, timer = null;
    var show = function (i) {
      index = ((i % frames.length) + frames.length) % frames.length;
      frames.forEach(function (f, k) { f.hidden = k !== index; });
      stage.dataset.angle = frames[index].dataset.angle;
      label.textContent = frames[index].dataset.angle + "\u00b0";
    };
    var stop = function () {
      if (timer !== null) { clearInterval(timer); timer = null; }
      delete stage.dataset.playing;
    };
    var turn = function (steps) { stop(); show(index + steps); };
    var reduced = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    if (!reduced && frames.length > 1) {  // one turn at 8 fps, back to the front view
      var played = 0;
      stage.dataset.playing = "true";
      timer = setInterval(function () { played += 1; show(played); if (played >= frames.length) { stop(); } }, 125);
    }
    document.addEventListener("keydown", function (e) {
      if (e.target && e.target.closest && e.target.closest("model-viewer, input, textarea")) { return; }
      if (e.key === "ArrowRight") { turn(1); e.preventDefault(); }
      if (e.key === "ArrowLeft") { turn(-1); e.preventDefault(); }
    });
    var startX = null, startIndex = 0;
    stage.addEventListener("pointerdown", function (e) {
      stop(); startX = e.clientX; startIndex = index; stage.classList.add("dragging");
      stage.setPointerCapture(e.pointerId);
    });
    stage.addEventListener("pointermove", function (e) {
      if (startX !== null) { show(startIndex + Math.round((startX - e.clientX) / 40)); }
    });
    var release = function () { startX = null; stage.classList.remove("dragging"); };
    stage.addEventListener("pointerup", release);
    stage.addEventListener("pointercancel", release);
  }

  var viewer = document.querySelector("model-viewer");
  var note = document.getElementById("viewer-note");
  var say = function (text) { if (note) { note.textContent = text; note.hidden = false; } };
  if (viewer) {
    if (!window.customElements || !customElements.get("model-viewer")) {
      say("The 3D viewer's script did not load; model.glb opens in any glTF viewer.");
    } else {
      viewer.addEventListener("error", function () { say("The 3D model could not be shown here."); });
      if (location.protocol !== "file:") {
        viewer.src = viewer.dataset.src;
      } else if (!viewer.dataset.embedded) {
        say(viewer.dataset.notEmbedded + ": open the page from a web server to turn the model.");
      } else {  // a browser refuses fetch() from file://: the GLB comes as base64 in a classic script
        var script = document.createElement("script");
        script.src = viewer.dataset.embedded;
        script.onload = function () {
          var text = atob(window.dropfitGlb), bytes = new Uint8Array(text.length);
          for (var i = 0; i < text.length; i += 1) { bytes[i] = text.charCodeAt(i); }
          viewer.src = URL.createObjectURL(new Blob([bytes], { type: "model/gltf-binary" }));
        };
        script.onerror = function () { say("The embedded copy of the model is missing."); };
        document.head.appendChild(script);
      }
    }
  }
})();
