// Keyboard shortcuts for the rating form: a/1, b/2, t/3 answer the current question and move on;
// up/down (or k/j) move between questions; c focuses the comment; Enter saves; left arrow goes back.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("rate-form");
  if (!form) return;
  var rows = Array.prototype.slice.call(form.querySelectorAll("fieldset.question"));
  var current = 0;
  function focusRow(i) {
    current = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach(function (row, j) { row.classList.toggle("current", j === current); });
  }
  var firstOpen = rows.findIndex(function (row) { return !row.querySelector("input:checked"); });
  focusRow(firstOpen < 0 ? 0 : firstOpen);
  rows.forEach(function (row, i) { row.addEventListener("click", function () { focusRow(i); }); });
  var keys = { a: "A", "1": "A", b: "B", "2": "B", t: "tie", "3": "tie" };
  document.addEventListener("keydown", function (event) {
    var tag = event.target.tagName;
    if (tag === "TEXTAREA" || tag === "INPUT" && event.target.type !== "radio") {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (Object.prototype.hasOwnProperty.call(keys, key)) {
      var input = rows[current].querySelector('input[value="' + keys[key] + '"]');
      input.checked = true;
      focusRow(current + 1);
      event.preventDefault();
    } else if (key === "ArrowDown" || key === "j") {
      focusRow(current + 1); event.preventDefault();
    } else if (key === "ArrowUp" || key === "k") {
      focusRow(current - 1); event.preventDefault();
    } else if (key === "c") {
      document.getElementById("comment").focus(); event.preventDefault();
    } else if (key === "Enter") {
      event.preventDefault();
      if (form.requestSubmit) form.requestSubmit(); else form.submit();
    } else if (key === "ArrowLeft") {
      var back = document.getElementById("back");
      if (back) { event.preventDefault(); window.location.href = back.getAttribute("href"); }
    }
  });
});
