// Page behaviour that used to sit in inline handlers (onsubmit=, onclick=, onchange=):
// the Content-Security-Policy allows no inline script. Delegated from the document, so
// it also covers fragments htmx swaps in.
//   <form data-confirm="Question?">      asks before submitting
//   <form data-confirm-restore data-source="name">  the restore question, built from the form
//   <button data-print>                  prints the page
//   <select data-autosubmit>             submits its form on change
//   <form data-kind-form>                shows only the fields whose data-kinds lists the
//                                        chosen kind (select name=kind); others stay hidden
//   <table data-check-rows="checks"> + <button data-add-check>
//                                        the check editor: the button adds a blank row
(function () {
  "use strict";

  function showKindFields(form) {
    var select = form.elements.namedItem("kind");
    if (!select) return;
    var kind = select.value;
    form.querySelectorAll("[data-kinds]").forEach(function (row) {
      var kinds = row.getAttribute("data-kinds").split(" ");
      // No kind chosen yet: show everything rather than an empty form.
      row.hidden = Boolean(kind) && kinds.indexOf(kind) === -1;
    });
  }

  function initKindForms() {
    document.querySelectorAll("form[data-kind-form]").forEach(showKindFields);
    document.querySelectorAll("[data-add-check]").forEach(function (b) {
      b.hidden = false; // without JavaScript the blank rows are there to type into
    });
  }

  // A blank copy of the last row, numbered after the highest row index in the table.
  function addCheckRow(button) {
    var table = button.parentNode.querySelector("table[data-check-rows]");
    if (!table) return;
    var name = table.getAttribute("data-check-rows");
    var rows = table.querySelectorAll("tr[data-check-row]");
    var last = rows[rows.length - 1];
    var next = 0;
    table.querySelectorAll("[name^='" + name + "-']").forEach(function (field) {
      next = Math.max(next, parseInt(field.name.split("-")[1], 10) + 1);
    });
    var row = last.cloneNode(true);
    row.querySelectorAll("input, textarea").forEach(function (field) {
      var part = field.name.split("-")[2];
      field.name = name + "-" + next + "-" + part;
      field.value = "";
      field.setAttribute("aria-label", field.getAttribute("aria-label").replace(/\d+/, next + 1));
    });
    last.parentNode.appendChild(row);
    row.querySelector("input").focus();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", initKindForms);
  } else {
    initKindForms();
  }

  function restoreQuestion(form) {
    var fields = form.elements;
    var name = form.getAttribute("data-source") || "";
    var onto = fields.namedItem("onto_source") && fields.namedItem("onto_source").checked;
    var target = fields.namedItem("target") ? fields.namedItem("target").value : "";
    var registered = fields.namedItem("restore_target");
    if (!target && registered && registered.selectedIndex > 0) {
      target = registered.options[registered.selectedIndex].text;
    }
    var where = onto
      ? "the source itself (" + name + "): its current data is kept aside first"
      : target || "(no target given)";
    return "Restore " + name + " to " + where + "?";
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    var question = form.hasAttribute("data-confirm-restore")
      ? restoreQuestion(form)
      : form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-print]");
    if (button) {
      event.preventDefault();
      window.print();
    }
    var add = event.target.closest && event.target.closest("[data-add-check]");
    if (add) {
      event.preventDefault();
      addCheckRow(add);
    }
  });

  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field.hasAttribute && field.hasAttribute("data-autosubmit") && field.form) {
      field.form.submit();
    }
    if (field.name === "kind" && field.form && field.form.hasAttribute("data-kind-form")) {
      showKindFields(field.form);
    }
  });
})();
