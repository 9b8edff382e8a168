// What the demo pages (chat, STOMP) share: the log lines, the status badge and the
// transport picker (filled here, preset from ?transport=...).
const TRANSPORTS = [
  "websocket", "xhr-streaming", "eventsource", "iframe-eventsource", "iframe-htmlfile",
  "xhr-polling", "iframe-xhr-polling", "jsonp-polling",
];

function line(box, text, cls) {
  const div = document.createElement("div");
  div.textContent = text;
  if (cls) div.className = cls;
  box.appendChild(div);
  box.scrollTop = box.scrollHeight;
}

function showStatus(badge, text, up) {
  badge.textContent = text;
  badge.className = up ? "badge" : "badge down";
}

function transportPicker(select) {
  for (const name of TRANSPORTS) select.add(new Option(name));
  const wanted = new URLSearchParams(location.search).get("transport");
  if (wanted) select.value = wanted;
  return select;
}

// SockJS options that force the picked transport, if any.
function sockjsOptions(picker) {
  return picker.value ? { transports: [picker.value] } : {};
}
