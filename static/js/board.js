/* The pipeline board (lifecycle/views/board.py).
 *
 * Dropping a card on another column never writes a stage. It asks the server which fact
 * explains the move: the server answers that fact's form (shown in a dialog) or, with a
 * 400, why no fact can. Submitting the form records the fact; the server answers the
 * card re-read where the lifecycle engine put it and the columns' fresh counts.
 * A refusal, an error or Cancel puts the card back where it was.
 *
 * SortableJS runs in fallback mode (its own pointer/touch dragging rather than HTML5
 * drag and drop): the same code path on a tablet's touch screen and with a mouse.
 */
(function () {
  "use strict";

  var board = document.querySelector("[data-board]");
  if (!board || typeof Sortable === "undefined") return;
  var dialog = document.getElementById("board-dialog");
  var dialogBody = dialog.querySelector("[data-dialog-body]");
  var statusBox = document.getElementById("board-status");
  var sortables = [];
  var pending = null; // {item, from, oldIndex, to} while a move waits for the server or the dialog

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  function say(text, kind) {
    statusBox.textContent = text;
    statusBox.className = "board-status msg " + kind;
    statusBox.hidden = false;
  }

  function textOf(html) {
    var holder = document.createElement("div");
    holder.innerHTML = html;
    return holder.textContent.trim();
  }

  function withFilters(url) {
    var query = board.dataset.filterQuery;
    return query ? url + (url.indexOf("?") < 0 ? "?" : "&") + query : url;
  }

  // The board carries the move URL of student 0; a card carries its student's id.
  function moveUrl(studentId) {
    return board.dataset.moveUrl.replace(/\/0\/move\/$/, "/" + studentId + "/move/");
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "X-Requested-With": "XMLHttpRequest" },
    });
  }

  function setBusy(busy) {
    board.classList.toggle("is-busy", busy);
    sortables.forEach(function (sortable) {
      sortable.option("disabled", busy);
    });
  }

  // Ends the pending move; `restore` puts the card back where it was picked up.
  function settle(restore) {
    var move = pending;
    pending = null;
    setBusy(false);
    if (!move) return null;
    move.item.classList.remove("is-pending");
    if (restore) {
      move.from.insertBefore(move.item, move.from.children[move.oldIndex] || null);
    }
    return move;
  }

  function refuse(response, html) {
    settle(true);
    if (response && response.status === 400 && html) {
      say(textOf(html), "error");
    } else if (response && response.status === 403) {
      say(board.dataset.msgForbidden, "error");
    } else {
      say(board.dataset.msgFailed, "error");
    }
  }

  function openDialog(html) {
    dialogBody.innerHTML = html;
    if (!dialog.open) dialog.showModal();
    var first = dialogBody.querySelector("select, textarea, input:not([type=hidden])");
    if (first) first.focus();
  }

  function closeDialog() {
    if (dialog.open) dialog.close();
    dialogBody.innerHTML = "";
  }

  function place(data) {
    var move = settle(false);
    if (move) move.item.remove();
    var list = board.querySelector('[data-cards="' + data.stage + '"]');
    var holder = document.createElement("template");
    holder.innerHTML = data.card.trim();
    var card = holder.content.firstElementChild;
    if (list && card) {
      var old = board.querySelector('.board-card[data-student="' + card.dataset.student + '"]');
      if (old) old.remove();
      list.insertBefore(card, list.firstElementChild);
      card.classList.add("just-moved");
    }
    Object.keys(data.counts).forEach(function (stage) {
      var counter = board.querySelector('[data-count="' + stage + '"]');
      if (counter) counter.textContent = data.counts[stage];
    });
    say(data.message, data.moved ? "success" : "warning");
  }

  function dropped(evt) {
    if (evt.from === evt.to || pending) return;
    pending = { item: evt.item, from: evt.from, oldIndex: evt.oldIndex, to: evt.to.dataset.cards };
    evt.item.classList.add("is-pending");
    setBusy(true);
    statusBox.hidden = true;
    var body = new FormData();
    body.append("to", pending.to);
    post(withFilters(moveUrl(evt.item.dataset.student)), body)
      .then(function (response) {
        return response.text().then(function (html) {
          if (response.ok) openDialog(html);
          else refuse(response, html);
        });
      })
      .catch(function () {
        refuse(null, "");
      });
  }

  dialogBody.addEventListener("submit", function (event) {
    var form = event.target.closest("[data-board-move-form]");
    if (!form) return;
    event.preventDefault();
    var button = form.querySelector("[type=submit]");
    if (button) button.disabled = true;
    post(form.action, new FormData(form))
      .then(function (response) {
        if (response.status === 422) {
          return response.text().then(openDialog);
        }
        if (!response.ok) {
          return response.text().then(function (html) {
            closeDialog();
            refuse(response, html);
          });
        }
        return response.json().then(function (data) {
          place(data); // settles first, so closing the dialog below is not a cancel
          closeDialog();
        });
      })
      .catch(function () {
        if (button) button.disabled = false;
        say(board.dataset.msgFailed, "error");
      });
  });

  dialogBody.addEventListener("click", function (event) {
    if (event.target.closest("[data-board-cancel]")) closeDialog();
  });

  // Cancel, Escape or any close while a move is pending: the card goes back.
  dialog.addEventListener("close", function () {
    if (pending) {
      settle(true);
      say(board.dataset.msgCancelled, "");
    }
  });

  board.querySelectorAll("[data-cards]").forEach(function (list) {
    sortables.push(
      Sortable.create(list, {
        group: "board",
        sort: false,
        draggable: ".board-card",
        forceFallback: true,
        fallbackOnBody: true,
        fallbackTolerance: 4,
        delay: 150,
        delayOnTouchOnly: true,
        animation: 120,
        ghostClass: "board-ghost",
        chosenClass: "board-chosen",
        dragClass: "board-drag",
        onStart: function () {
          board.classList.add("is-dragging");
        },
        onEnd: function (evt) {
          board.classList.remove("is-dragging");
          dropped(evt);
        },
      })
    );
  });

  // "Load more" continues after the cards a column shows now, not after the page it was
  // rendered with: a card moved out of (or into) a column would otherwise make the next
  // page skip (or repeat) one.
  document.body.addEventListener("htmx:configRequest", function (event) {
    var target = event.detail.target;
    if (!target || !target.matches || !target.matches("[data-cards]")) return;
    var shown = target.querySelectorAll(".board-card").length;
    event.detail.path = event.detail.path.replace(/([?&]offset=)\d+/, "$1" + shown);
  });

  // Filters apply as soon as a choice changes; the text field on Enter.
  var filters = document.querySelector("[data-board-filters]");
  if (filters) {
    filters.addEventListener("change", function (event) {
      if (event.target.tagName === "SELECT") filters.requestSubmit();
    });
  }
})();
