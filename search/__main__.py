"""``python -m search`` lists the verbs (search.cli.verbs reads them from search/verbs/)."""

from search.cli.verbs import listing

if __name__ == "__main__":
    print(listing())
