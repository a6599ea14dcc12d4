<?php
// Creates the store's pages and its sample products from the JSON file given as the first
// argument. Products are matched by SKU (sf-1, sf-2, ...), so a second run updates instead
// of duplicating, and products beyond the list are hidden.
if (!function_exists('wc_get_product_id_by_sku')) {
    WP_CLI::error('WooCommerce is not active');
}
WC_Install::create_pages();

$path = $args[0];
$products = json_decode((string) file_get_contents($path), true);
// A JSON object decodes to an array too: only a list of objects with text fields will do.
if (!is_array($products) || !array_is_list($products)) {
    WP_CLI::error("cannot read a list of products from $path");
}
foreach ($products as $index => $item) {
    $sku = 'sf-' . ($index + 1);
    $valid = is_array($item)
        && is_string($item['name'] ?? null)
        && is_string($item['price'] ?? null)
        && is_string($item['description'] ?? '');
    if (!$valid) {
        WP_CLI::error("product $sku in $path is not an object with text name, price and description");
    }
    $id = wc_get_product_id_by_sku($sku);
    $product = $id ? wc_get_product($id) : new WC_Product_Simple();
    if (!$product) {
        WP_CLI::error("product $sku (id $id) exists but cannot be loaded");
    }
    $product->set_sku($sku);
    $product->set_name((string) $item['name']);
    $product->set_regular_price((string) $item['price']);
    $product->set_description((string) ($item['description'] ?? ''));
    $product->set_status('publish');
    $product->set_catalog_visibility('visible');
    $product->save();
    WP_CLI::log(($id ? 'updated ' : 'created ') . $sku);
}
// Products dropped from the list (a store changed to fewer products) are hidden, not
// deleted: orders may refer to them.
for ($n = count($products) + 1; ($id = wc_get_product_id_by_sku("sf-$n")) !== 0; $n++) {
    $product = wc_get_product($id);
    if ($product && $product->get_status() !== 'draft') {
        $product->set_status('draft');
        $product->save();
        WP_CLI::log("hidden sf-$n");
    }
}
WP_CLI::success(count($products) . ' products seeded');
