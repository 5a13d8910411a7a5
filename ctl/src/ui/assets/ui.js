// labctl ui: the dashboard's only script. Plain JavaScript, no libraries, no build step.
// It keeps relative times current, asks before actions, filters the fact tree and follows a
// job's server-sent events on the job page. Every page works without it except live output.
(function () {
  'use strict';

  // "3m ago" / "in 5m", as the server writes them.
  function relative(at) {
    var d = Date.now() - at;
    if (Math.abs(d) < 1000) return 'now';
    var s = Math.floor(Math.abs(d) / 1000);
    var text = s < 60 ? s + 's' : s < 3600 ? Math.floor(s / 60) + 'm'
      : s < 86400 ? Math.floor(s / 3600) + 'h' : Math.floor(s / 86400) + 'd';
    return d > 0 ? text + ' ago' : 'in ' + text;
  }

  function timeElement(iso) {
    if (!iso) return document.createTextNode('');
    var t = document.createElement('time');
    t.setAttribute('datetime', iso);
    t.title = iso;
    t.textContent = relative(Date.parse(iso));
    return t;
  }

  function refreshTimes() {
    document.querySelectorAll('time[datetime]').forEach(function (t) {
      var at = Date.parse(t.getAttribute('datetime'));
      if (!isNaN(at)) t.textContent = relative(at);
    });
  }
  setInterval(refreshTimes, 15000);

  // Forms with data-confirm ask first.
  document.addEventListener('submit', function (e) {
    var question = e.target.getAttribute && e.target.getAttribute('data-confirm');
    if (question && !window.confirm(question)) e.preventDefault();
  });

  // Fact tree search: keeps matching leaves (path or value) and opens their branches.
  var search = document.getElementById('fact-search');
  var facts = document.getElementById('facts');
  if (search && facts) {
    search.addEventListener('input', function () {
      var q = search.value.trim().toLowerCase();
      var hits = 0;
      facts.querySelectorAll('li.leaf').forEach(function (li) {
        var text = (li.getAttribute('data-path') + ' ' + li.textContent).toLowerCase();
        var hit = q !== '' && text.indexOf(q) >= 0;
        li.classList.toggle('hit', hit);
        li.hidden = q !== '' && !hit;
        if (hit) hits++;
      });
      var branches = Array.prototype.slice.call(facts.querySelectorAll('li.branch')).reverse();
      branches.forEach(function (li) {
        var any = li.querySelector('li.leaf:not([hidden])') !== null;
        li.hidden = q !== '' && !any;
        if (q !== '' && any) li.querySelector('details').open = true;
      });
      document.getElementById('fact-count').textContent = q === '' ? '' : hits + ' match(es)';
    });
  }

  // The job page: follow /jobs/ID/events.
  var job = document.getElementById('job');
  if (!job || !job.getAttribute('data-events') || typeof EventSource === 'undefined') return;
  var MAX_LINES = 10000;

  function badge(state, cls) {
    var b = document.createElement('span');
    b.className = 'badge ' + cls;
    b.setAttribute('data-state', state);
    b.textContent = state;
    return b;
  }

  function countsBar(c) {
    var holder = document.getElementById('job-counts');
    if (!holder || !c) return;
    var parts = [['good', c.succeeded, 'succeeded'], ['bad', c.failed, 'failed'],
      ['warn', c.other, 'cancelled or expired'], ['busy', c.running, 'running'],
      ['neutral', c.pending, 'pending']];
    var total = c.total || 1;
    var NS = 'http://www.w3.org/2000/svg';
    var bar = document.createElementNS(NS, 'svg');
    bar.setAttribute('class', 'stack');
    bar.setAttribute('viewBox', '0 0 100 10');
    bar.setAttribute('preserveAspectRatio', 'none');
    bar.setAttribute('role', 'img');
    var words = [];
    var x = 0;
    parts.forEach(function (p) {
      if (!p[1]) return;
      words.push(p[1] + ' ' + p[2]);
      var w = p[1] * 100 / total;
      var rect = document.createElementNS(NS, 'rect');
      rect.setAttribute('class', p[0]);
      rect.setAttribute('x', x.toFixed(2));
      rect.setAttribute('width', w.toFixed(2));
      rect.setAttribute('height', '10');
      var title = document.createElementNS(NS, 'title');
      title.textContent = p[1] + ' ' + p[2];
      rect.appendChild(title);
      bar.appendChild(rect);
      x += w;
    });
    bar.setAttribute('aria-label', words.join(', '));
    var text = document.createElement('span');
    text.className = 'counts';
    var not = c.failed + c.other;
    text.textContent = c.succeeded + ' of ' + c.total + ' ok' + (not ? ', ' + not + ' not' : '');
    holder.replaceChildren(bar, text);
  }

  function row(task) {
    return document.getElementById('task-' + task);
  }

  var source = new EventSource(job.getAttribute('data-events'));
  source.addEventListener('task', function (e) {
    var d = JSON.parse(e.data);
    var r = row(d.task);
    if (r) {
      r.setAttribute('data-state', d.state);
      r.querySelector('.state').replaceChildren(badge(d.state, d.class));
      r.querySelector('.exit').textContent = d.exit === null ? '' : String(d.exit);
      r.querySelector('.started').replaceChildren(timeElement(d.started));
      r.querySelector('.took').textContent = d.took || '';
      r.querySelector('.err').textContent = d.error || '';
    }
    countsBar(d.counts);
  });
  source.addEventListener('out', function (e) {
    var d = JSON.parse(e.data);
    var pre = document.getElementById('out-' + d.task);
    if (!pre) return;
    var follow = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    var line = document.createElement('span');
    if (d.err) line.className = 'stderr';
    line.textContent = d.line + '\n';
    pre.appendChild(line);
    while (pre.childNodes.length > MAX_LINES) pre.removeChild(pre.firstChild);
    if (follow) pre.scrollTop = pre.scrollHeight;
  });
  source.addEventListener('progress', function (e) {
    var d = JSON.parse(e.data);
    var r = row(d.task);
    if (!r) return;
    var bar = r.querySelector('progress');
    bar.hidden = false;
    bar.value = d.percent;
    r.querySelector('.ptext').textContent = d.text;
  });
  source.addEventListener('done', function () {
    source.close();
    job.setAttribute('data-done', 'true');
    // The job's final state and the buttons come from the page itself, fetched once more.
    fetch(window.location.href, { credentials: 'same-origin' })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, 'text/html');
        ['job-state', 'job-counts', 'job-finished', 'job-actions'].forEach(function (id) {
          var old = document.getElementById(id);
          var now = fresh.getElementById(id);
          if (old && now) old.replaceWith(now);
        });
      })
      .catch(function () {});
  });
})();
