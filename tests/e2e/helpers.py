"""What the browser tests read off the pages."""

from search.models import Item

RESULTS_READY = """() => {
  const results = document.getElementById("results");
  return results && !results.hidden && results.getAttribute("aria-busy") !== "true"
    && results.querySelector(".card, .notice");
}"""


def wait_for_results(page) -> None:
    page.wait_for_function(RESULTS_READY)


def result_items(page) -> list[Item]:
    """The items on the results grid, in page order, read back from the database."""
    ids = [int(i) for i in page.locator("#results .grid > li.card").evaluate_all("els => els.map(e => e.dataset.item)")]
    items = Item.objects.in_bulk(ids)
    return [items[i] for i in ids]


def shoot(page, output_dir, name: str) -> None:
    page.screenshot(path=str(output_dir / f"e2e-{name}.png"), full_page=True)
