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
 *
 * Where the card goes is decided here, from the point where the finger or mouse let go,
 * not from Sortable's `to`: Sortable keeps the card in the last list it crossed, so a card
 * let go over the page's margin, a gap or the filters would count as dropped on whichever
 * column it passed last. A drop outside every column puts the card back and asks nothing.
 *
 * On a board wider than the screen, holding a card near (or past) the board's left or
 * right edge scrolls it, so every column can be reached; Sortable's own auto-scroll only
 * reacts inside a thin strip of the board and never to a finger at the screen's edge.
 */
(function () {
  "use strict";

  var board = document.querySelector("[data-board]");
  if (!board || typeof Sortable === "undefined") return;
  var dialog = document.getElementById("board-dialog");
  var dialogBody = dialog.querySelector("[data-dialog-body]");
  var statusBox = document.getElementById("board-status");
  var sortables = [];
  var acceptsNode = document.getElementById("board-accepts");
  var accepts = acceptsNode ? JSON.parse(acceptsNode.textContent) : {}; // column -> stages a fact brings there
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

  // The column under a point of the screen, or null (a gap, the margin, the filters).
  function columnAt(x, y) {
    var hits = document.elementsFromPoint(x, y);
    for (var i = 0; i < hits.length; i++) {
      if (hits[i].closest(".board-drag")) continue; // the card being dragged, under the finger
      var col = hits[i].closest("[data-column]");
      if (col && board.contains(col)) return col;
      if (hits[i] === document.body) break;
    }
    return null;
  }

  // Where the pointer is while a card is dragged (clientX/Y), kept from every kind of move
  // event, because the end event of a touch carries its point only in changedTouches.
  var drag = null; // {x, y, frame, target, home}

  function pointOf(event) {
    var touch = (event.touches && event.touches[0]) || (event.changedTouches && event.changedTouches[0]);
    var source = touch || event;
    return typeof source.clientX === "number" ? { x: source.clientX, y: source.clientY } : null;
  }

  function track(event) {
    if (!drag) return;
    var point = pointOf(event);
    if (!point) return;
    drag.x = point.x;
    drag.y = point.y;
    markTarget();
    if (!drag.frame) drag.frame = requestAnimationFrame(autoScroll);
  }

  function markTarget() {
    var col = drag && drag.x !== null ? columnAt(drag.x, drag.y) : null;
    if (col && col === drag.home) col = null; // going back home is no move to point at
    if (drag && col === drag.target) return;
    if (drag && drag.target) drag.target.classList.remove("is-target");
    if (col) col.classList.add("is-target");
    if (drag) drag.target = col;
  }

  // The part of the board on screen (the board may be wider than the page shows).
  function visibleRect() {
    var rect = board.getBoundingClientRect();
    return { left: Math.max(rect.left, 0), right: Math.min(rect.right, window.innerWidth) };
  }

  // Scrolls the board while the pointer is held near (or past) its left or right edge,
  // the faster the deeper into the edge, so a finger can both creep and rush.
  function autoScroll() {
    if (!drag) return;
    drag.frame = 0;
    var room = board.scrollWidth - board.clientWidth;
    if (room <= 0 || drag.x === null) return;
    var seen = visibleRect();
    var zone = Math.min(64, (seen.right - seen.left) / 8);
    var depth = 0;
    if (drag.x > seen.right - zone && board.scrollLeft < room) {
      depth = Math.min(1, (drag.x - (seen.right - zone)) / zone);
    } else if (drag.x < seen.left + zone && board.scrollLeft > 0) {
      depth = -Math.min(1, (seen.left + zone - drag.x) / zone);
    }
    if (!depth) return;
    board.scrollLeft += Math.round(depth * 24) || (depth > 0 ? 1 : -1);
    markTarget();
    drag.frame = requestAnimationFrame(autoScroll);
  }

  var MOVE_EVENTS = ["pointermove", "mousemove", "touchmove", "pointerup", "mouseup", "touchend"];

  function dragStarted(evt) {
    var from = evt.from.dataset.cards;
    drag = { x: null, y: null, frame: 0, target: null, home: evt.from.closest("[data-column]") };
    board.classList.add("is-dragging");
    board.querySelectorAll("[data-column]").forEach(function (col) {
      var stage = col.dataset.column;
      col.classList.toggle("is-closed", stage !== from && (accepts[stage] || []).indexOf(from) < 0);
    });
    MOVE_EVENTS.forEach(function (name) {
      document.addEventListener(name, track, { capture: true, passive: true });
    });
  }

  // The column the card was let go over, or null; ends the tracking either way.
  function dragEnded(evt) {
    var point = (evt.originalEvent && pointOf(evt.originalEvent)) || (drag && drag.x !== null ? drag : null);
    MOVE_EVENTS.forEach(function (name) {
      document.removeEventListener(name, track, { capture: true });
    });
    if (drag && drag.frame) cancelAnimationFrame(drag.frame);
    if (drag && drag.target) drag.target.classList.remove("is-target");
    drag = null;
    board.classList.remove("is-dragging");
    board.querySelectorAll(".is-closed").forEach(function (col) {
      col.classList.remove("is-closed");
    });
    return point ? columnAt(point.x, point.y) : null;
  }

  function dropped(evt) {
    var landed = dragEnded(evt);
    if (pending) return;
    var to = landed ? landed.dataset.column : null;
    var home = evt.from.dataset.cards;
    if (!to || to === home) {
      // Back where it was picked up: nothing is asked, nothing is recorded.
      if (evt.item.parentNode !== evt.from) evt.from.insertBefore(evt.item, evt.from.children[evt.oldIndex] || null);
      if (!to) say(board.dataset.msgMissed, "");
      return;
    }
    var list = landed.querySelector("[data-cards]");
    if (list && evt.item.parentNode !== list) list.insertBefore(evt.item, list.firstElementChild);
    pending = { item: evt.item, from: evt.from, oldIndex: evt.oldIndex, to: to };
    evt.item.classList.add("is-pending");
    setBusy(true);
    statusBox.hidden = true;
    var body = new FormData();
    body.append("to", to);
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
        scroll: false, // the board scrolls itself (autoScroll above)
        ghostClass: "board-ghost",
        chosenClass: "board-chosen",
        dragClass: "board-drag",
        onStart: dragStarted,
        onEnd: dropped,
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

  // Then it says how many cards came, out of how many, and lights them up for a moment.
  var before = new WeakMap(); // a column's list -> its cards before the swap
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.matches && target.matches("[data-cards]")) {
      before.set(target, Array.prototype.slice.call(target.querySelectorAll(".board-card")));
    }
  });
  document.body.addEventListener("htmx:afterSwap", function (event) {
    var list = event.detail.target;
    if (!list || !before.has(list)) return;
    var old = before.get(list);
    before.delete(list);
    var cards = Array.prototype.slice.call(list.querySelectorAll(".board-card"));
    var added = cards.filter(function (card) {
      return old.indexOf(card) < 0;
    });
    var stage = list.dataset.cards;
    var counter = board.querySelector('[data-count="' + stage + '"]');
    var note = board.querySelector('[data-loaded="' + stage + '"]');
    if (note) {
      note.textContent = added.length
        ? board.dataset.msgLoaded
            .replace("%(added)s", added.length)
            .replace("%(shown)s", cards.length)
            .replace("%(total)s", counter ? counter.textContent.trim() : cards.length)
        : board.dataset.msgLoadedNone;
      note.hidden = false;
    }
    added.forEach(function (card) {
      card.classList.add("just-loaded");
    });
    if (added.length) added[0].scrollIntoView({ block: "nearest", inline: "nearest" });
  });

  // Filters apply as soon as a choice changes; the text field on Enter.
  var filters = document.querySelector("[data-board-filters]");
  if (filters) {
    filters.addEventListener("change", function (event) {
      if (event.target.tagName === "SELECT") filters.requestSubmit();
    });
  }
})();
