// The playground: one chat completion, streamed from /v1 with a relay key, as any SDK would call it.
(function () {
  const root = document.getElementById("playground");
  if (!root) return;
  const form = document.getElementById("playground-form");
  const output = document.getElementById("pg-output");
  const facts = document.getElementById("pg-facts");
  const error = document.getElementById("pg-error");
  const send = document.getElementById("pg-send");
  const stop = document.getElementById("pg-stop");
  const STORE = "tokenhub.playground-key";
  let controller = null;

  const csrf = () => (document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || "";

  async function playgroundKey() {
    const pasted = document.getElementById("pg-key").value.trim();
    if (pasted) return pasted;
    let key = null;
    try { key = localStorage.getItem(STORE); } catch (e) { /* storage off: a key per visit */ }
    if (key) return key;
    const made = await fetch(root.dataset.keyUrl, { method: "POST", headers: { "X-CSRFToken": csrf() } });
    if (!made.ok) throw new Error(`${root.dataset.textKeyFailed} (${made.status}).`);
    key = (await made.json()).key;
    try { localStorage.setItem(STORE, key); } catch (e) { /* ok */ }
    return key;
  }

  function show(name, text) { root.querySelector(`[data-testid="playground-${name}"]`).textContent = text; }

  async function run(event) {
    event.preventDefault();
    error.textContent = "";
    output.textContent = "";
    facts.hidden = true;
    send.disabled = true;
    stop.disabled = false;
    controller = new AbortController();
    try {
      const key = await playgroundKey();
      const body = {
        model: form.model.value,
        messages: [{ role: "user", content: form.prompt.value }],
        stream: true,
        stream_options: { include_usage: true },
      };
      const response = await fetch(root.dataset.api, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}` },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      show("request-id", response.headers.get("x-request-id") || "");
      if (!response.ok) {
        const problem = await response.json().catch(() => ({}));
        if (response.status === 401 && !document.getElementById("pg-key").value) {
          try { localStorage.removeItem(STORE); } catch (e) { /* ok */ }  // revoked: a new one next time
        }
        throw new Error((problem.error && problem.error.message) || `${root.dataset.textCallFailed} (${response.status}).`);
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          for (const line of block.split("\n")) {
            if (!line.startsWith("data:")) continue;
            const data = line.slice(5).trim();
            if (data === "[DONE]") continue;
            const chunk = JSON.parse(data);
            if (chunk.error) throw new Error(chunk.error.message || root.dataset.textStreamFailed);
            const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
            if (delta && delta.content) output.textContent += delta.content;
            if (chunk.usage) {
              show("tokens", root.dataset.textTokens.replace("{in}", chunk.usage.prompt_tokens).replace("{out}", chunk.usage.completion_tokens));
              show("cost", chunk.usage.cost_usd ? `$${chunk.usage.cost_usd}` : "—");
              facts.hidden = false;
            }
          }
        }
      }
    } catch (problem) {
      if (problem.name !== "AbortError") error.textContent = problem.message;
    } finally {
      send.disabled = false;
      stop.disabled = true;
      controller = null;
    }
  }

  form.addEventListener("submit", run);
  stop.addEventListener("click", () => controller && controller.abort());
})();
