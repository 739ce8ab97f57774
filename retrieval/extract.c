/*
 * Extraction of text from HTML (libxml2's forgiving HTML parser) and PDF
 * (poppler-glib). HTML headings become Markdown "#" lines and <pre> blocks
 * become fenced code, so the chunker sees the document's structure; scripts,
 * styles and other invisible parts are dropped and white space is collapsed
 * as a browser would. PDF pages are separated by form feeds, which the
 * chunker turns into page numbers in the citation's title path.
 */
#include "retrieval/internal.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <poppler.h>

typedef struct html_out {
	ag_buf b;
	int nl_pending;
	bool space_pending;
	char *title;
	int err;
} html_out;

static void put(html_out *o, const char *s, size_t n)
{
	if (!o->err && ag_buf_append(&o->b, s, n))
		o->err = ag_error_set(AG_ENOMEM, "out of memory");
}

static void block(html_out *o, int n)
{
	if (n > o->nl_pending)
		o->nl_pending = n;
}

/* Appends text with white space collapsed. */
static void text(html_out *o, const char *s)
{
	for (; *s; s++) {
		char ch = *s;
		if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v') {
			o->space_pending = true;
			continue;
		}
		if (o->nl_pending) {
			if (o->b.len)
				put(o, "\n\n", (size_t)o->nl_pending);
			o->nl_pending = 0;
		} else if (o->space_pending && o->b.len && o->b.data[o->b.len - 1] != '\n') {
			put(o, " ", 1);
		}
		o->space_pending = false;
		put(o, s, 1);
	}
}

static bool is_name(const xmlNode *n, const char *const *names)
{
	for (size_t i = 0; names[i]; i++)
		if (strcasecmp((const char *)n->name, names[i]) == 0)
			return true;
	return false;
}

static void walk(html_out *o, xmlNode *n, int depth)
{
	static const char *const hidden[] = {"script", "style",  "noscript", "template", "head",
					     "iframe", "object", "svg",      "canvas",   NULL};
	static const char *const blocks[] = {
		"p",       "div", "section",    "article", "ul",      "ol",      "li",
		"table",   "tr",  "blockquote", "dl",      "dd",      "dt",      "header",
		"footer",  "nav", "main",       "aside",   "form",    "figure",  "figcaption",
		"address", "hr",  "body",       "details", "summary", "caption", NULL};
	if (depth > 512)
		return;
	for (; n && !o->err; n = n->next) {
		if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
			if (n->content)
				text(o, (const char *)n->content);
			continue;
		}
		if (n->type != XML_ELEMENT_NODE || !n->name)
			continue;
		const char *name = (const char *)n->name;
		if (strcasecmp(name, "title") == 0) {
			if (!o->title) {
				xmlChar *t = xmlNodeGetContent(n);
				if (t) {
					o->title = ag_strdup((const char *)t);
					xmlFree(t);
				}
			}
			continue;
		}
		if (is_name(n, hidden)) {
			/* <head> may hold the <title>. */
			if (strcasecmp(name, "head") == 0)
				walk(o, n->children, depth + 1);
			continue;
		}
		if (strlen(name) == 2 && (name[0] == 'h' || name[0] == 'H') && name[1] >= '1' &&
		    name[1] <= '6') {
			xmlChar *t = xmlNodeGetContent(n);
			block(o, 2);
			if (t) {
				/* The hashes go through text() so pending breaks are written first. */
				static const char hashes[] = "###### ";
				int level = name[1] - '0';
				char prefix[8];
				memcpy(prefix, hashes + 6 - level, (size_t)level);
				prefix[level] = '\0';
				text(o, prefix);
				o->space_pending = true;
				text(o, (const char *)t);
				xmlFree(t);
			}
			block(o, 2);
			continue;
		}
		if (strcasecmp(name, "pre") == 0) {
			xmlChar *t = xmlNodeGetContent(n);
			block(o, 2);
			text(o, "```");
			put(o, "\n", 1);
			if (t) {
				size_t len = strlen((const char *)t);
				put(o, (const char *)t, len);
				if (len && t[len - 1] != '\n')
					put(o, "\n", 1);
				xmlFree(t);
			}
			put(o, "```", 3);
			o->space_pending = false;
			block(o, 2);
			continue;
		}
		if (strcasecmp(name, "br") == 0) {
			block(o, 1);
			continue;
		}
		bool is_block = is_name(n, blocks);
		bool cell = strcasecmp(name, "td") == 0 || strcasecmp(name, "th") == 0;
		if (is_block)
			block(o, strcasecmp(name, "li") == 0 || strcasecmp(name, "tr") == 0 ? 1 : 2);
		if (cell)
			o->space_pending = true;
		walk(o, n->children, depth + 1);
		if (is_block)
			block(o, strcasecmp(name, "li") == 0 || strcasecmp(name, "tr") == 0 ? 1 : 2);
		if (cell)
			o->space_pending = true;
	}
}

int retrieval_html_to_text(char **out, size_t *len_out, char **title_out, const char *html, size_t len)
{
	*title_out = NULL;
	if (len > INT_MAX)
		return ag_error_set(AG_ELIMIT, "HTML document too large");
	htmlDocPtr doc = htmlReadMemory(html, (int)len, NULL, NULL,
					HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
						HTML_PARSE_NONET | HTML_PARSE_COMPACT);
	if (!doc)
		return ag_error_set(AG_ECORRUPT, "the HTML could not be parsed");
	html_out o = {0};
	walk(&o, xmlDocGetRootElement(doc), 0);
	xmlFreeDoc(doc);
	if (!o.err)
		put(&o, "\n", 1);
	if (o.err) {
		ag_buf_free(&o.b);
		ag_free(o.title);
		return o.err;
	}
	*len_out = o.b.len;
	*out = ag_buf_detach(&o.b, NULL);
	*title_out = o.title;
	return 0;
}

int retrieval_pdf_to_text(char **out, size_t *len_out, char **title_out, const char *pdf, size_t len)
{
	*title_out = NULL;
	GError *gerr = NULL;
	GBytes *bytes = g_bytes_new_static(pdf, len);
	PopplerDocument *doc = poppler_document_new_from_bytes(bytes, NULL, &gerr);
	g_bytes_unref(bytes);
	if (!doc) {
		int rc = ag_error_set(AG_ECORRUPT, "the PDF could not be read: %s",
				      gerr && gerr->message ? gerr->message : "damaged or encrypted");
		if (gerr)
			g_error_free(gerr);
		return rc;
	}
	ag_buf b = AG_BUF_INIT;
	int rc = 0, pages = poppler_document_get_n_pages(doc);
	bool any = false;
	for (int i = 0; i < pages && !rc; i++) {
		PopplerPage *page = poppler_document_get_page(doc, i);
		if (!page)
			continue;
		char *t = poppler_page_get_text(page);
		if (i > 0 && ag_buf_puts(&b, "\n\f\n"))
			rc = ag_error_set(AG_ENOMEM, "out of memory");
		if (t && !rc) {
			/* Text from the PDF is UTF-8; NULs would read as binary, so they go. */
			for (const char *s = t; *s && !rc; s++) {
				if (*s != '\f' && ag_buf_putc(&b, *s))
					rc = ag_error_set(AG_ENOMEM, "out of memory");
				any |= *s != ' ' && *s != '\n';
			}
		}
		g_free(t);
		g_object_unref(page);
	}
	char *title = poppler_document_get_title(doc);
	g_object_unref(doc);
	if (!rc && !any)
		rc = ag_error_set(AG_EUNSUPPORTED, "the PDF has no text to extract (a scan without OCR?)");
	if (!rc && ag_buf_putc(&b, '\n'))
		rc = ag_error_set(AG_ENOMEM, "out of memory");
	if (!rc && title && *title && !(*title_out = ag_strdup(title)))
		rc = ag_error_set(AG_ENOMEM, "out of memory");
	g_free(title);
	if (rc) {
		ag_buf_free(&b);
		ag_free(*title_out);
		*title_out = NULL;
		return rc;
	}
	*len_out = b.len;
	*out = ag_buf_detach(&b, NULL);
	return 0;
}
