<?php
// Minimal stand-ins for the parts of WP-CLI and WooCommerce that seed-products.php calls,
// run by the `wp` stand-in for `wp eval-file <file> <args>...`. Products are kept in the
// JSON file $WC_STUB_DB, so that a second run sees the first one's products. Anything the
// seeding code calls that is not stood in here fails loudly (an undefined function or
// method is a fatal error in PHP).
declare(strict_types=1);

set_error_handler(function (int $level, string $message, string $file, int $line): bool {
    // Warnings and notices (an undefined index, a bad conversion) fail the test too.
    fwrite(STDERR, "PHP error: $message at $file:$line\n");
    exit(70);
});

final class StubDb
{
    /** @var array<int, array<string, string>> */
    public static array $products = [];
    public static int $pages_created = 0;

    public static function load(): void
    {
        $path = getenv('WC_STUB_DB');
        if (is_file($path)) {
            $data = json_decode(file_get_contents($path), true, 512, JSON_THROW_ON_ERROR);
            foreach ($data['products'] as $product) {
                self::$products[(int) $product['id']] = $product;
            }
            self::$pages_created = $data['pages_created'];
        }
    }

    public static function save(): void
    {
        $data = ['products' => array_values(self::$products), 'pages_created' => self::$pages_created];
        file_put_contents(
            getenv('WC_STUB_DB'),
            json_encode($data, JSON_THROW_ON_ERROR | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES)
        );
    }
}

final class WP_CLI
{
    public static function error(string $message): void
    {
        fwrite(STDERR, "Error: $message\n");
        exit(1);
    }

    public static function log(string $message): void
    {
        echo $message, "\n";
    }

    public static function success(string $message): void
    {
        echo "Success: $message\n";
    }
}

final class WC_Install
{
    public static function create_pages(): void
    {
        StubDb::$pages_created++;
    }
}

function wc_get_product_id_by_sku(string $sku): int
{
    foreach (StubDb::$products as $id => $product) {
        if ($product['sku'] === $sku) {
            return $id;
        }
    }
    return 0;
}

function wc_get_product(int $id): WC_Product_Simple|false
{
    return isset(StubDb::$products[$id]) ? new WC_Product_Simple($id) : false;
}

final class WC_Product_Simple
{
    private int $id;
    /** @var array<string, string> */
    private array $data = [];

    public function __construct(int $id = 0)
    {
        $this->id = $id;
        if ($id) {
            $this->data = StubDb::$products[$id];
            unset($this->data['id']);
        }
    }

    // The setters take strings, as WooCommerce's do for these fields.
    public function set_sku(string $v): void { $this->set('sku', $v); }
    public function set_name(string $v): void { $this->set('name', $v); }
    public function set_regular_price(string $v): void { $this->set('regular_price', $v); }
    public function set_description(string $v): void { $this->set('description', $v); }
    public function set_status(string $v): void { $this->set('status', $v); }
    public function set_catalog_visibility(string $v): void { $this->set('catalog_visibility', $v); }
    public function get_status(): string { return $this->data['status'] ?? ''; }

    private function set(string $key, string $value): void
    {
        $this->data[$key] = $value;
    }

    public function save(): int
    {
        if (!$this->id) {
            $this->id = count(StubDb::$products) + 1;
        }
        StubDb::$products[$this->id] = ['id' => (string) $this->id] + $this->data;
        return $this->id;
    }
}

StubDb::load();
register_shutdown_function([StubDb::class, 'save']);

// As `wp eval-file` does: the file runs with its arguments in `$args`.
(function (string $file, array $args): void {
    include $file;
})($argv[1], array_slice($argv, 2));
